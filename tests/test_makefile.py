"""The README's `make run` contract: the demo config by default, another config or port on ask."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_line(*args: str) -> str:
    out = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed", "run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (line,) = [ln for ln in out.splitlines() if "crisiswatch run" in ln]
    return line.split("crisiswatch ", 1)[1].strip()


def test_make_run_starts_the_demo_config() -> None:
    assert run_line() == "run --config config/default.yaml"


def test_make_run_takes_another_config_and_port() -> None:
    line = run_line("CONFIG=config/examples/production.yaml", "PORT=8081")
    assert line == "run --config config/examples/production.yaml --port 8081"
