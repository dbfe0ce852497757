"""The C extensions in detectors/ are built from their current sources."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

DETECTORS = Path(__file__).resolve().parents[2] / "detectors"


@pytest.mark.parametrize("source", sorted(DETECTORS.glob("*.c")), ids=lambda p: p.stem)
def test_every_extension_is_built_from_its_current_source(source: Path) -> None:
    """Every other test of an extension would test a stale build after an edit of its source."""
    module = importlib.import_module(f"detectors.{source.stem}")
    built = Path(str(module.__file__))
    assert built.suffix == ".so", f"{source.name} was not built"
    assert built.stat().st_mtime >= source.stat().st_mtime, (
        f"{built.name} is older than {source.name}: rebuild it with `make test` "
        "(or `.venv/bin/pip install -e .`)"
    )
