"""The backtest writes NAB-format results and scores them, through the live stage."""

from __future__ import annotations

import csv
import io
import itertools
from pathlib import Path

import pytest

from detectors.backtest import read_series, run_backtest, run_series
from detectors.stage import DetectionStage
from monitor.config.detection import DetectionConfig

DATA = Path(__file__).resolve().parents[1] / "data" / "nab"


def test_backtest_writes_rows_and_scores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = [DATA / "Twitter_volume_PFE_head.csv", DATA / "art_flatline.csv"]
    log = io.StringIO()
    code = run_backtest(inputs, tmp_path, DetectionConfig(), DATA / "windows.json", log)
    assert code == 0
    for p in inputs:
        with (tmp_path / p.name).open() as fh:
            rows = list(csv.DictReader(fh))
        src = list(csv.DictReader(p.open()))
        assert [r["timestamp"] for r in rows] == [r["timestamp"] for r in src]
        assert all(0.0 <= float(r["anomaly_score"]) <= 1.0 for r in rows)
        assert {r["alert"] for r in rows} <= {"0", "1"}
    flat = list(csv.DictReader((tmp_path / "art_flatline.csv").open()))
    assert sum(int(r["alert"]) for r in flat) == 0
    out = capsys.readouterr().out
    assert "NAB standard:" in out and "NAB reward_low_FP_rate:" in out
    assert "NAB reward_low_FN_rate:" in out
    assert "Twitter_volume_PFE_head.csv: 2000 rows" in log.getvalue()


def test_alert_rows_are_onsets_not_every_alerting_row(tmp_path: Path) -> None:
    lines = ["timestamp,value"]
    for i in range(3 * 288):
        count = 10 + i % 3 + (500 if 2 * 288 <= i < 2 * 288 + 24 else 0)
        h, m = divmod(i * 5, 60)
        lines.append(f"2015-01-{1 + h // 24:02d} {h % 24:02d}:{m:02d}:00,{count}")
    src = tmp_path / "burst.csv"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert run_backtest([src], out, DetectionConfig(), None, io.StringIO()) == 0
    rows = list(csv.DictReader((out / "burst.csv").open()))
    alerts = [i for i, r in enumerate(rows) if r["alert"] == "1"]
    # one open at the burst; at most one re-page, and only after repage_seconds
    assert 1 <= len(alerts) <= 2 and 2 * 288 <= alerts[0] < 2 * 288 + 3
    assert all(b - a >= 1800 / 300 for a, b in itertools.pairwise(alerts))


def test_bad_input_is_exit_code_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("time,count\n1,2\n")
    log = io.StringIO()
    assert run_backtest([bad], tmp_path / "o", DetectionConfig(), None, log) == 2
    assert "bad.csv:1" in log.getvalue()


@pytest.mark.parametrize(
    ("row", "says"),
    [
        ("2015-01-01 00:05:00", "expected 'timestamp,value', got ['2015-01-01 00:05:00']"),
        ("yesterday,4", "timestamp 'yesterday' is not an ISO 8601 time"),
        ("2015-01-01 00:05:00,abc", "value 'abc' is not a number"),
        ("2015-01-01 00:05:00,nan", "value 'nan' must be finite and within ±1e+12"),
        ("2015-01-01 00:05:00,-inf", "value '-inf' must be finite and within ±1e+12"),
        # a count whose square overflowed the volume model's dispersion: a traceback before
        ("2015-01-01 00:05:00,1e300", "value '1e300' must be finite and within ±1e+12"),
    ],
)
def test_a_bad_row_names_its_line_and_field(tmp_path: Path, row: str, says: str) -> None:
    src = tmp_path / "f.csv"
    src.write_text(f"timestamp,value\n2015-01-01 00:00:00,3\n{row}\n")
    log = io.StringIO()
    assert run_backtest([src], tmp_path / "o", DetectionConfig(), None, log) == 2
    assert f"f.csv:3: {says}" in log.getvalue()


@pytest.mark.parametrize("pattern", ["alternating", "burst", "negative"])
def test_values_up_to_the_limit_run_through_the_model(tmp_path: Path, pattern: str) -> None:
    """The model's squares stay finite at the largest accepted value (rounded and clipped at 0
    like any non-count value)."""
    big = 1e12

    def value(i: int) -> float:
        if pattern == "alternating":
            return big * (i % 2)
        if pattern == "burst":
            return big if 600 <= i < 610 else 1.0
        return -big if i % 3 else big

    lines = ["timestamp,value"]
    for i in range(3 * 288):
        h, m = divmod(i * 5, 60)
        lines.append(f"2015-01-{1 + h // 24:02d} {h % 24:02d}:{m:02d}:00,{value(i)!r}")
    src = tmp_path / "big.csv"
    src.write_text("\n".join(lines) + "\n")
    assert run_backtest([src], tmp_path / "o", DetectionConfig(), None, io.StringIO()) == 0
    rows = list(csv.DictReader((tmp_path / "o" / "big.csv").open()))
    assert all(0.0 <= float(r["anomaly_score"]) <= 1.0 for r in rows)
    if pattern == "burst":
        assert next(i for i, r in enumerate(rows) if r["alert"] == "1") in range(600, 603)


def test_a_spreadsheet_csv_with_a_bom_is_read(tmp_path: Path) -> None:
    src = tmp_path / "bom.csv"
    src.write_bytes(b"\xef\xbb\xbftimestamp,value\n2015-01-01 00:00:00,3\n")
    assert run_backtest([src], tmp_path / "o", DetectionConfig(), None, io.StringIO()) == 0


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("latin1.csv", b"timestamp,value\n2015-01-01 00:00:00,3\n\xe4\n", "not UTF-8 text"),
        ("binary.csv", bytes(range(256)), "not UTF-8 text"),
    ],
)
def test_input_that_is_not_text_is_one_line_and_exit_2(
    tmp_path: Path, name: str, content: bytes, says: str
) -> None:
    src = tmp_path / name
    src.write_bytes(content)
    log = io.StringIO()
    assert run_backtest([src], tmp_path / "o", DetectionConfig(), None, log) == 2
    assert says in log.getvalue() and "Traceback" not in log.getvalue()


@pytest.mark.parametrize(
    "labels",
    [
        '{"d/f.csv": [["2015-01-01 00:00:00"]]}',  # a window of one end
        '{"d/f.csv": 5}',
        '{"d/f.csv": [["not a time", "2015-01-02 00:00:00"]]}',
    ],
)
def test_a_malformed_labels_file_is_one_line_and_exit_2(tmp_path: Path, labels: str) -> None:
    src = tmp_path / "f.csv"
    src.write_text("timestamp,value\n2015-01-01 00:00:00,3\n")
    lab = tmp_path / "labels.json"
    lab.write_text(labels)
    log = io.StringIO()
    assert run_backtest([src], tmp_path / "o", DetectionConfig(), lab, log) == 2
    assert "d/f.csv: expected a list of [start, end] timestamps" in log.getvalue()


def test_labels_that_name_none_of_the_inputs_are_an_error(tmp_path: Path) -> None:
    src = tmp_path / "f.csv"
    src.write_text("timestamp,value\n2015-01-01 00:00:00,3\n")
    lab = tmp_path / "labels.json"
    lab.write_text('{"realTweets/other.csv": []}')
    log = io.StringIO()
    assert run_backtest([src], tmp_path / "o", DetectionConfig(), lab, log) == 2
    assert "labels none of the inputs" in log.getvalue()
    assert not (tmp_path / "o").exists()  # checked before any output is written


@pytest.mark.parametrize(
    ("second", "labels", "says"),
    [
        ("timestamp,value\n2015-01-01 00:00:00,nan\n", None, "b.csv"),
        (None, '{"d/a.csv": [["2015-01-01 00:05:00", "2015-01-01 00:00:00"]]}', "ends before"),
        (None, '{"d/b.csv": [["2015-01-02 00:00:00", "2015-01-02 00:05:00"]]}', "row timestamp"),
    ],
)
def test_a_bad_input_or_window_leaves_no_results_behind(
    tmp_path: Path, second: str | None, labels: str | None, says: str
) -> None:
    """A bad second file, a reversed window or one off the rows: the first file's result used
    to be written before the error (or a reversed window scored), exit 2 all the same (QA)."""
    d = tmp_path / "d"
    d.mkdir()
    good = "timestamp,value\n2015-01-01 00:00:00,3\n2015-01-01 00:05:00,4\n"
    (d / "a.csv").write_text(good)
    (d / "b.csv").write_text(second or good)
    lab = None
    if labels is not None:
        lab = tmp_path / "labels.json"
        lab.write_text(labels)
    log = io.StringIO()
    out = tmp_path / "o"
    assert run_backtest([d / "a.csv", d / "b.csv"], out, DetectionConfig(), lab, log) == 2
    assert says in log.getvalue() and log.getvalue().count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize(
    ("rows", "outcome"),
    [
        # most stamps repeated: the width is the typical step forward, repeats are late rows
        (["00:00:00,3", "00:00:00,4", "00:00:00,4", "00:05:00,4"], 0),
        (["00:00:00,3", "00:00:00,4"], "timestamps never increase"),
        (["00:10:00,3", "00:05:00,4", "00:00:00,4"], "timestamps never increase"),
    ],
)
def test_stamps_that_do_not_step_forward_are_no_traceback(
    tmp_path: Path, rows: list[str], outcome: int | str
) -> None:
    """The bucket width was the median step: 0 or negative, and the stage divided by it."""
    src = tmp_path / "odd.csv"
    src.write_text("timestamp,value\n" + "".join(f"2015-01-01 {r}\n" for r in rows))
    log = io.StringIO()
    code = run_backtest([src], tmp_path / "o", DetectionConfig(), None, log)
    if outcome == 0:
        assert code == 0
        assert len(list(csv.DictReader((tmp_path / "o" / "odd.csv").open()))) == len(rows)
    else:
        assert code == 2 and f"odd.csv: {outcome}" in log.getvalue()


def test_stamps_with_a_utc_offset_are_read_in_that_offset(tmp_path: Path) -> None:
    """A local-time export across a DST change: the offsets make the stamps one 5-min grid.
    The offset was dropped, so the autumn hour repeated (rows judged late, never learned)."""
    src = tmp_path / "local.csv"
    lines = ["timestamp,value"]
    for i in range(48):  # 2015-10-25 00:00 UTC .. 03:55 UTC; CEST ends at 01:00 UTC
        h, m = divmod(i * 5, 60)
        offset = 2 if h < 1 else 1
        lines.append(f"2015-10-25T{h + offset:02d}:{m:02d}:00+0{offset}:00,{i}")
    src.write_text("\n".join(lines) + "\n")
    s = read_series(src)
    assert all(b - a == 300.0 for a, b in itertools.pairwise(s.t))


def test_rows_that_skip_buckets_are_noted_as_learned_zeros(tmp_path: Path) -> None:
    """A series not sampled for hours was learned as hours of silence without a word."""
    stamps = [f"2015-01-01 {h:02d}:{m:02d}:00" for h in range(4) for m in range(0, 60, 5)]
    stamps = stamps[:12] + stamps[36:]  # 01:00-02:55 missing: one 3 h step
    src = tmp_path / "gappy.csv"
    src.write_text("timestamp,value\n" + "".join(f"{s},7\n" for s in stamps))
    log = io.StringIO()
    assert run_backtest([src], tmp_path / "out", DetectionConfig(), None, log) == 0
    assert "gappy.csv: note: 1 gap between rows (longest 2.1 h at a 300 s step)" in log.getvalue()
    # a minute series off for two days: the stage learns at most MAX_GAP_FILL empty buckets
    minutes = [f"2015-01-01 00:{m:02d}:00" for m in range(10)] + [
        f"2015-01-03 00:{m:02d}:00" for m in range(10)
    ]
    src = tmp_path / "off.csv"
    src.write_text("timestamp,value\n" + "".join(f"{s},7\n" for s in minutes))
    log = io.StringIO()
    assert run_backtest([src], tmp_path / "out3", DetectionConfig(), None, log) == 0
    assert "learned as zero counts (at most 1440 buckets a gap)" in log.getvalue()
    regular = DATA / "Twitter_volume_PFE_head.csv"
    log = io.StringIO()
    assert run_backtest([regular], tmp_path / "out2", DetectionConfig(), None, log) == 0
    assert "note:" not in log.getvalue()


ROWS = "".join(f"2015-01-01 00:{m:02d}:00,{m}\n" for m in range(5, 60, 5))


@pytest.mark.parametrize(
    ("row", "says"),
    [
        # the quote runs on past the csv module's field limit: a traceback, exit 1 before
        ('2015-01-01 00:05:00,"100\n' + ROWS * 3000, "f.csv:3: not CSV from here on: field"),
        # a short file: the whole rest of it was echoed as the value
        ('2015-01-01 00:05:00,"100\n' + ROWS, "f.csv:3: value '100\\n2015-01-01 00:05:00,5"),
        # a quoted line break: valid CSV, but the output row was split over two lines
        ('2015-01-01 00:05:00,"5\n"\n', "f.csv:3: value '5\\n' spans lines"),
        ('"2015-01-01 00:05:00\n",5\n', "f.csv:3: timestamp '2015-01-01 00:05:00\\n' spans lines"),
        # the quote opened in the timestamp: one field swallowed the rest (no hint before)
        ('"2015-01-01 00:05:00,2\n' + ROWS, "f.csv:3: timestamp '2015-01-01 00:05:00,2\\n2015"),
    ],
)
def test_a_quote_left_open_is_one_short_line_and_exit_2(
    tmp_path: Path, row: str, says: str
) -> None:
    src = tmp_path / "f.csv"
    src.write_text(f"timestamp,value\n2015-01-01 00:00:00,3\n{row}")
    log = io.StringIO()
    assert run_backtest([src], tmp_path / "o", DetectionConfig(), None, log) == 2
    assert log.getvalue().startswith(f"error: {src.parent}/{says}"), log.getvalue()[:300]
    assert log.getvalue().count("\n") == 1 and len(log.getvalue()) < 250
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_result_that_cannot_be_written_is_exit_1_naming_out(tmp_path: Path) -> None:
    """A full disk was exit 2, the code for bad input, with a bare `[Errno 28]` (QA)."""
    src = DATA / "art_flatline.csv"
    out = tmp_path / "o"
    out.mkdir()
    (out / f".{src.name}.partial").symlink_to("/dev/full")  # where it writes before renaming
    log = io.StringIO()
    assert run_backtest([src], out, DetectionConfig(), None, log) == 1
    says = f"error: --out {out / src.name}: cannot write: No space left on device\n"
    assert log.getvalue() == says


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_run_that_cannot_write_every_result_leaves_none_and_no_partial_file(
    tmp_path: Path,
) -> None:
    """A full disk on the second file left the first result and a truncated second one under
    their real names, to be read as a run that worked."""
    first, second = DATA / "art_flatline.csv", DATA / "Twitter_volume_PFE_head.csv"
    out = tmp_path / "o"
    out.mkdir()
    (out / second.name).write_text("an earlier run's result\n")
    (out / f".{second.name}.partial").symlink_to("/dev/full")
    log = io.StringIO()
    assert run_backtest([first, second], out, DetectionConfig(), None, log) == 1
    assert sorted(p.name for p in out.iterdir()) == [second.name]
    assert (out / second.name).read_text() == "an earlier run's result\n"
    assert run_backtest([first, second], out, DetectionConfig(), None, io.StringIO()) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([first.name, second.name])


def test_an_out_that_is_a_file_is_exit_2_naming_out(tmp_path: Path) -> None:
    """It printed a bare `error: [Errno 17] File exists: '...'` (QA)."""
    afile = tmp_path / "afile"
    afile.write_text("keep")
    log = io.StringIO()
    assert run_backtest([DATA / "art_flatline.csv"], afile, DetectionConfig(), None, log) == 2
    assert log.getvalue() == f"error: --out {afile}: {afile} is not a directory\n"
    assert afile.read_text() == "keep"
    log = io.StringIO()  # a folder under that file: exit 1 ("cannot write") before
    assert (
        run_backtest([DATA / "art_flatline.csv"], afile / "sub", DetectionConfig(), None, log) == 2
    )
    assert log.getvalue() == f"error: --out {afile / 'sub'}: {afile} is not a directory\n"


def test_labels_without_any_window_print_no_score(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """artificialNoAnomaly printed `NAB standard: 0.00` and `median delay ...: None rows`."""
    src = DATA / "art_flatline.csv"
    log = io.StringIO()
    assert run_backtest([src], tmp_path / "o", DetectionConfig(), DATA / "windows.json", log) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-4:] == [
        "median delay from window start: n/a (no labelled windows)",
        "NAB standard: n/a (no labelled windows)",
        "NAB reward_low_FP_rate: n/a (no labelled windows)",
        "NAB reward_low_FN_rate: n/a (no labelled windows)",
    ]
    # one labelled window among the inputs: the scores as always
    both = [DATA / "Twitter_volume_PFE_head.csv", src]
    assert run_backtest(both, tmp_path / "o2", DetectionConfig(), DATA / "windows.json", log) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-4].startswith("median delay from window start: ") and out[-4].endswith(" rows")
    assert out[-3].startswith("NAB standard: ") and "n/a" not in "".join(out)


def test_a_window_off_the_rows_is_named(tmp_path: Path) -> None:
    """A truncated file said only `label window does not match a row timestamp` (QA)."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.csv").write_text("timestamp,value\n2015-01-01 00:00:00,3\n2015-01-01 00:05:00,4\n")
    lab = tmp_path / "labels.json"
    lab.write_text('{"d/a.csv": [["2015-01-01 00:00:00.000000", "2015-01-02 00:00:00.000000"]]}')
    log = io.StringIO()
    assert run_backtest([d / "a.csv"], tmp_path / "o", DetectionConfig(), lab, log) == 2
    assert log.getvalue() == (
        f"error: {d / 'a.csv'}: label window 2015-01-01 00:00:00 .. 2015-01-02 00:00:00:"
        " its end does not match a row timestamp\n"
    )


def test_a_long_file_says_how_far_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A million rows ran half a minute without a word (CLI QA, eleventh session)."""
    monkeypatch.setattr("detectors.backtest.PROGRESS_FROM_ROWS", 1000)
    series = read_series(DATA / "Twitter_volume_PFE_head.csv")  # 2000 rows
    progress = io.StringIO()
    scores, alerts = run_series(DetectionStage(DetectionConfig()), series, progress)
    assert progress.getvalue().splitlines() == [
        f"Twitter_volume_PFE_head.csv: {i:,} of 2,000 rows" for i in range(200, 2000, 200)
    ]
    assert len(scores) == len(alerts) == 2000
    monkeypatch.setattr("detectors.backtest.PROGRESS_FROM_ROWS", 2001)
    quiet = io.StringIO()
    assert run_series(DetectionStage(DetectionConfig()), series, quiet) == (scores, alerts)
    assert quiet.getvalue() == ""
