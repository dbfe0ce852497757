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


def test_backtest_never_overwrites_an_input_or_one_result_with_another(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    (data / "b").mkdir(parents=True)
    one, other = data / SERIES.name, data / "b" / SERIES.name
    original = SERIES.read_text()
    one.write_text(original)
    other.write_text(original)
    assert cli.main(["backtest", str(one), "--out", str(data)]) == 2
    assert "would overwrite this input" in capsys.readouterr().err
    assert one.read_text() == original
    assert cli.main(["backtest", str(one), str(other), "--out", str(tmp_path / "o")]) == 2
    assert "same file name as" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--speed", "0"], "error: --speed: must be a positive number (got 0.0)"),
        (["--speed", "nan"], "error: --speed: must be a positive number (got nan)"),
        (["--port", "70000"], "error: --port: must be in 0..65535 (got 70000)"),
    ],
)
def test_run_rejects_bad_overrides_with_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(ROOT / "config" / "default.yaml")
    assert cli.main(["run", "--config", config, *argv]) == 2
    assert capsys.readouterr().err.strip() == message
