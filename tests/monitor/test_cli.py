"""The command line finds its default config from any working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor import cli

ROOT = Path(__file__).resolve().parents[2]
SERIES = ROOT / "tests" / "data" / "nab" / "Twitter_volume_PFE_head.csv"


def test_backtest_from_another_directory_uses_the_checkouts_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["backtest", str(SERIES), "--out", "out"]) == 0
    assert (tmp_path / "out" / SERIES.name).read_text().startswith("timestamp,value,")
    assert f"config: {ROOT / 'config' / 'default.yaml'}" in capsys.readouterr().err


def test_without_any_default_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "default_config", lambda: None)  # an installed copy, no checkout
    assert cli.main(["backtest", str(SERIES), "--out", "out"]) == 0
    assert "config: the built-in detection defaults" in capsys.readouterr().err
    # the service and on-call need topics and schedules: they say what is missing
    assert cli.main(["oncall"]) == 2
    assert "config/default.yaml: not found here or in the checkout; pass --config" in (
        capsys.readouterr().err
    )
