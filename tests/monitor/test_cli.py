"""The command line finds its default config from any working directory."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from monitor import cli

ROOT = Path(__file__).resolve().parents[2]
SERIES = ROOT / "tests" / "data" / "nab" / "Twitter_volume_PFE_head.csv"


def test_backtest_without_config_runs_the_frozen_default_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It read the checkout's config/default.yaml, whose detection block tunes the demo (1 h
    warm-up, 2 h calm): a young or short series scored differently there (QA, tenth
    session: one alert instead of none)."""
    outs: list[str] = []
    for where in (tmp_path, ROOT):
        monkeypatch.chdir(where)
        out = tmp_path / f"out-{len(outs)}"
        assert cli.main(["backtest", str(SERIES), "--out", str(out)]) == 0
        assert "config: the built-in frozen detection default" in capsys.readouterr().err
        outs.append((out / SERIES.name).read_text())
    assert outs[0] == outs[1] and outs[0].startswith("timestamp,value,")
    demo = ROOT / "config" / "default.yaml"
    assert (
        cli.main(["backtest", str(SERIES), "--out", str(tmp_path / "d"), "--config", str(demo)])
        == 0
    )
    assert f"config: {demo}" in capsys.readouterr().err


def test_without_any_default_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "default_config", lambda: None)  # an installed copy, no checkout
    assert cli.main(["backtest", str(SERIES), "--out", "out"]) == 0
    assert "config: the built-in frozen detection default" in capsys.readouterr().err
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


def test_a_missing_sentiment_model_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor.enrich import linear

    monkeypatch.setattr(linear, "DEFAULT_MODEL", "missing.npz")
    monkeypatch.setattr(sys, "stdin", io.StringIO("I love it\n"))
    assert cli.main(["sentiment"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ") and "missing.npz: cannot load sentiment model" in err[0]


def test_sentiment_into_a_pipe_closed_early_exits_quietly(tmp_path: Path) -> None:
    """`crisiswatch sentiment < big.txt | head -1`: no traceback, no "Exception ignored"."""
    texts = tmp_path / "big.txt"
    texts.write_text("I love it\nawful, broken again\n" * 20_000)
    with texts.open("rb") as stdin:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "sentiment", "--lang", "en"],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith(b"positive\t")
        proc.stdout.close()  # what `head -1` does after its line
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=120)
    assert err == ""
    assert code == 128 + signal.SIGPIPE  # what a shell reports for a filter ended by SIGPIPE


def test_oncall_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    # the output fits the buffer: the broken pipe shows only when it is flushed at exit
    r, w = os.pipe()
    os.close(r)
    proc = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "oncall"],
        stdout=w,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        check=False,
        timeout=120,
    )
    os.close(w)
    assert proc.stderr.decode() == ""
    assert proc.returncode == 128 + signal.SIGPIPE


@pytest.mark.parametrize(
    ("at", "reason"),
    [
        ("yesterday", "expected an ISO 8601 time"),
        ("", "expected an ISO 8601 time"),  # not "now"
        ("9999-12-31T23:59", "year 9999 is outside 1971..9998"),  # overflowed with a traceback
        ("0001-01-01T00:00", "year 1 is outside 1971..9998"),
    ],
)
def test_oncall_at_a_time_it_cannot_use_is_one_line_and_exit_2(
    at: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["oncall", "--config", str(ROOT / "config" / "default.yaml"), "--at", at]) == 2
    assert capsys.readouterr().err == f"error: --at: {reason} (got {at!r})\n"


@pytest.mark.parametrize(
    ("demo_on", "argv", "scaled", "warned"),
    [(True, [], True, False), (False, [], False, False), (False, ["--speed", "60"], True, True)],
)
def test_run_speeds_the_clock_up_only_for_the_demo_or_when_asked(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    demo_on: bool,
    argv: list[str],
    scaled: bool,
    warned: bool,
) -> None:
    """A copy of the demo config with the demo off and HTTP ingest on kept speed 10: every real
    mention arrived as late and none reached a series (QA, tenth session)."""
    import monitor.app
    from monitor.clock import ScaledClock

    cfg = tmp_path / "cw.yaml"
    cfg.write_text(
        "topics: [{name: acme, query: acme}]\n"
        f"sources: {{demo: {{enabled: {str(demo_on).lower()}, speed: 10}},"
        f" http: {{enabled: {str(not demo_on).lower()}}}}}\n"
    )
    clocks: list[object] = []

    async def serve(config: object, clock: object, stop: object) -> None:
        clocks.append(clock)

    monkeypatch.setattr(monitor.app, "serve", serve)
    assert cli.main(["run", "--config", str(cfg), *argv]) == 0
    assert isinstance(clocks[0], ScaledClock) is scaled
    assert ("arrive as late" in caplog.text) is warned
    if warned:
        assert "sources.http" in caplog.text


def test_a_file_given_twice_is_scored_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`backtest IBM.csv IBM.csv --labels ...` printed two rows, and weighed it double."""
    monkeypatch.chdir(SERIES.parent)
    labels = str(SERIES.parent / "windows.json")
    again = f"../nab/{SERIES.name}"  # another spelling of the same file
    argv = ["backtest", str(SERIES), again, "--out", str(tmp_path / "o"), "--labels", labels]
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert sum(line.startswith(SERIES.name) for line in out.splitlines()) == 1
    assert f"note: {again}: given twice, scored once" in err
    assert cli.main([*argv[:2], "--out", str(tmp_path / "o1"), "--labels", labels]) == 0
    assert capsys.readouterr().out == out  # the scores of the file given once


def test_backtest_out_naming_a_file_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    assert cli.main(["backtest", str(SERIES), "--out", str(afile)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: --out {afile}: {afile} is not a directory"
    )


SCORED = f"backtest {SERIES} --out {{tmp}} --labels {SERIES.parent}/windows.json"


@pytest.mark.parametrize(
    ("command", "redirect", "says"),
    [
        ("sentiment", "<&-", "error: stdin: closed"),
        ("sentiment", ">&-", "error: stdout: closed"),
        ("oncall", ">&-", "error: stdout: closed"),
        (SCORED, ">&-", "error: stdout: closed"),  # the scores were lost after the work
    ],
)
def test_stdin_or_stdout_closed_by_the_shell_is_one_line_and_exit_2(
    tmp_path: Path, command: str, redirect: str, says: str
) -> None:
    """`crisiswatch sentiment <&-` was a TypeError traceback, `>&-` an AttributeError (QA)."""
    cmd = f"{sys.executable} -m monitor.cli {command.format(tmp=tmp_path / 'o')} {redirect}"
    proc = subprocess.run(
        ["sh", "-c", cmd],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        text=True,
        check=False,
        timeout=120,
    )
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(errors) == 1 and errors[0].startswith(says)
    assert not (tmp_path / "o").exists()  # refused before the work, not after it


def test_version_is_the_installed_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.metadata

    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"crisiswatch {importlib.metadata.version('crisiswatch')}\n"


@pytest.mark.parametrize(
    ("argv", "verbose"),
    [
        (["-v", "check-config", "x.yaml"], True),
        (["check-config", "-v", "x.yaml"], True),  # was "unrecognized arguments: -v"
        (["check-config", "x.yaml"], False),
        (["backtest", "s.csv", "--out", "d", "--verbose"], True),
    ],
)
def test_verbose_goes_before_or_after_the_command(argv: list[str], verbose: bool) -> None:
    assert cli.parser().parse_args(argv).verbose is verbose


def test_help_names_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["backtest", "--help"])
    out = capsys.readouterr().out
    assert "exit codes: 0 ok; 1 a runtime failure" in " ".join(out.split())
    assert "--labels WINDOWS.json" in out and "NAB scores" in " ".join(out.split())


def test_run_raises_the_open_files_limit_to_the_hard_one() -> None:
    """At a soft 1,024 a flood of half-sent requests took every descriptor: no wall, no
    webhook, no broker reconnect (collectors QA, fourteenth session)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.skip("needs a finite hard limit above 256")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        assert cli.open_files_limit() == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_check_config_warns_of_a_feed_polled_less_often_than_lateness_allows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """At the defaults (300 s polls, 60 s watermark) two thirds of a healthy feed's items
    counted in no series, and nothing said so (collectors QA, fourteenth session)."""
    import yaml

    doc = yaml.safe_load((Path(__file__).parents[2] / "config/default.yaml").read_text())
    doc["sources"]["rss"] = {"enabled": True, "feeds": [{"url": "https://news.example/rss"}]}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert cli.main(["check-config", str(path)]) == 0  # valid: a warning, not an error
    err = capsys.readouterr().err
    assert err.startswith("warning: ") and "https://news.example/rss" in err
