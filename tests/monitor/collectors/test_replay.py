"""Replay of JSONL/CSV in event time (fake clock), as fast as possible, looping, and the CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tracemalloc
from contextlib import aclosing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.clock import FakeClock
from monitor.collectors.registry import health_dict, watch_health
from monitor.collectors.replay import MAX_WAIT_SECONDS, ReplaySource, main, pace
from monitor.config.sources import ReplayConfig
from monitor.decode import encode_mention
from monitor.model import Author, Mention

from .conftest import make_harness

ROOT = Path(__file__).parents[3]
CSV = ROOT / "tests/data/collectors/replay_sample.csv"
EXCEL_CSV = ROOT / "tests/data/collectors/replay_excel_bom.csv"  # "CSV UTF-8": BOM, CRLF
T0 = 1_714_564_800.0


def write_jsonl(path: Path, offsets: list[float]) -> None:
    lines = [
        json.dumps(
            encode_mention(
                Mention(
                    id=f"m{i}",
                    source="x-archive",
                    channel="x",
                    text=f"acme {i}",
                    created_at=T0 + off,
                    author=Author(id="a", handle="@a"),
                )
            )
        )
        for i, off in enumerate(offsets)
    ]
    lines.insert(2, '{"id": "broken"')
    lines.insert(3, "")
    path.write_text("\n".join(lines) + "\n")


async def collect(src: ReplaySource, clock: FakeClock) -> list[tuple[float, Mention]]:
    out: list[tuple[float, Mention]] = []
    async with aclosing(src.stream()) as stream:
        async for m in stream:
            out.append((clock.monotonic(), m))
    return out


async def test_event_time_pacing_with_speed(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    write_jsonl(path, [0, 10, 20, 15, 60])
    clock = FakeClock(1000.0)
    h = make_harness(clock)
    src = ReplaySource(ReplayConfig(enabled=True, paths=[str(path)], speed=10), h.ctx)
    got = await collect(src, clock)
    assert [m.id for _, m in got] == ["m0", "m1", "m2", "m3", "m4"]
    # emitted at (t - t0) / 10 after the start; the late line (15 after 20) goes out at once
    assert [w - 1000.0 for w, _ in got] == [0.0, 1.0, 2.0, 2.0, 6.0]
    assert got[0][1].source == "x-archive"  # a record's own source wins over the replay name
    assert h.letters.reasons == {"malformed_json": 1}
    assert "a.jsonl:3" in h.letters.items[0][2]
    assert src.done


async def test_as_fast_as_possible_and_loop(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    write_jsonl(path, [0, 30, 60])
    clock = FakeClock(0.0)
    h = make_harness(clock)
    cfg = ReplayConfig(enabled=True, paths=[str(path)], speed=None, loop=True)
    got: list[Mention] = []
    async with aclosing(ReplaySource(cfg, h.ctx).stream()) as stream:
        async for m in stream:
            got.append(m)
            if len(got) == 7:
                break
    assert clock.monotonic() == 0.0  # no waiting at all
    assert [m.id for m in got] == ["m0", "m1", "m2", "m0~1", "m1~1", "m2~1", "m0~2"]
    assert [m.created_at - T0 for m in got] == [0, 30, 60, 61, 91, 121, 122]


async def test_csv(tmp_path: Path) -> None:
    clock = FakeClock(0.0)
    h = make_harness(clock)
    got = await collect(
        ReplaySource(ReplayConfig(enabled=True, paths=[str(CSV)], speed=None), h.ctx), clock
    )
    ms = [m for _, m in got]
    assert [m.id for m in ms] == ["c1", "c2", "c4"]
    assert ms[0].metrics == (("likes", 4),) and ms[0].author.followers == 120
    assert (ms[1].kind, ms[1].in_reply_to, ms[1].author.verified, ms[1].channel) == (
        "reply",
        "c1",
        True,
        "facebook",
    )
    assert ms[0].source == "replay" and ms[2].lang == "de"
    assert h.letters.reasons == {"wrong_type": 1}  # followers "lots"


def test_cli_prints_ndjson(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "monitor.collectors.replay", "--fast", str(CSV)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert [x["id"] for x in lines] == ["c1", "c2", "c4"]
    assert "wrong_type" in out.stderr


async def test_a_missing_file_is_reported_and_the_other_files_still_play(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_jsonl(a, [0, 10, 20])
    b.write_text(a.read_text().replace('"m', '"b'))
    clock = FakeClock(0.0)
    h = make_harness(clock)
    paths = [str(a), str(tmp_path / "gone.jsonl"), str(b)]
    src = ReplaySource(ReplayConfig(enabled=True, paths=paths, speed=None), h.ctx)
    got = [m.id for _, m in await collect(src, clock)]
    assert got == ["m0", "m1", "m2", "b0", "b1", "b2"]
    assert src.done
    unreadable = [i for i in h.letters.items if "gone.jsonl" in i[2]]
    assert len(unreadable) == 1 and unreadable[0][1] == "malformed_feed"


async def test_a_csv_cell_beyond_the_csv_field_limit_costs_that_row_only(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    huge = "x" * 200_000  # beyond csv.field_size_limit() (128 KiB): the reader raises
    path.write_text(
        "id,created_at,text,author_id\n"
        "r1,1714564800,acme one,u1\n"
        f'r2,1714564801,"{huge}",u2\n'
        "r3,1714564802,acme three,u3\n"
    )
    clock = FakeClock(0.0)
    h = make_harness(clock)
    src = ReplaySource(ReplayConfig(enabled=True, paths=[str(path)], speed=None), h.ctx)
    got = [m.id for _, m in await collect(src, clock)]
    assert got == ["r1", "r3"]
    assert h.letters.reasons == {"malformed_feed": 1}
    assert "big.csv:3: csv: field larger than field limit" in h.letters.items[0][2]


LATIN1_CSV = b"id,created_at,text,author_id\nl1,1714564800,caf\xe9 acme,u1\nl2,1714564801,ok,u2\n"


def test_cli_survives_a_csv_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(LATIN1_CSV)
    out = subprocess.run(
        [sys.executable, "-m", "monitor.collectors.replay", "--fast", str(path)],
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    lines = [json.loads(x) for x in out.stdout.decode("utf-8").splitlines()]
    assert [(x["id"], x["text"]) for x in lines] == [("l2", "ok")]
    assert b"latin1.csv:2: invalid_utf8: byte 0xe9 in column 'text'" in out.stderr


async def test_a_csv_row_that_is_not_utf8_is_dead_lettered_like_jsonl(tmp_path: Path) -> None:
    # a mangled "caf\ufffd" would be counted, scored and shown as if it were what was said
    csv_path, jsonl_path = tmp_path / "latin1.csv", tmp_path / "latin1.jsonl"
    csv_path.write_bytes(LATIN1_CSV)
    jsonl_path.write_bytes(
        b'{"id":"j1","text":"caf\xe9","created_at":1714564800,"author":{"id":"a"}}\n'
    )
    clock = FakeClock(0.0)
    h = make_harness(clock)
    paths = [str(csv_path), str(jsonl_path)]
    got = await collect(
        ReplaySource(ReplayConfig(enabled=True, paths=paths, speed=None), h.ctx), clock
    )
    assert [m.id for _, m in got] == ["l2"]
    assert h.letters.reasons == {"invalid_utf8": 2}
    (_, _, detail, payload), _ = h.letters.items
    assert detail == "latin1.csv:2: byte 0xe9 in column 'text'"
    assert b"caf\xe9 acme" in payload  # the bytes as they were in the file


async def test_a_leading_utf8_bom_is_ignored(tmp_path: Path) -> None:
    # Excel's "CSV UTF-8" and some editors start the file with EF BB BF: it is not data
    jsonl = tmp_path / "bom.jsonl"
    write_jsonl(jsonl, [0, 1, 2])
    jsonl.write_bytes(b"\xef\xbb\xbf" + jsonl.read_bytes())
    clock = FakeClock(0.0)
    h = make_harness(clock)
    paths = [str(EXCEL_CSV), str(jsonl)]
    got = await collect(
        ReplaySource(ReplayConfig(enabled=True, paths=paths, speed=None), h.ctx), clock
    )
    assert [m.id for _, m in got] == ["x1", "x2", "m0", "m1", "m2"]
    assert got[0][1].text == "Acme, wo bleibt die R\u00fcckerstattung?"
    assert got[0][1].author.handle == "@ute"
    assert h.letters.reasons == {"malformed_json": 1}  # write_jsonl's own broken line only


async def test_a_long_run_of_bad_lines_does_not_hold_the_event_loop(tmp_path: Path) -> None:
    # every line dead-lettered means no yield to the consumer: the reader must still let the
    # rest of the service (websockets, MQTT keepalives, HTTP) run while it works through them
    path = tmp_path / "ms.jsonl"
    line = json.dumps(
        {"id": "x", "text": "t", "created_at": 1_714_564_800_000, "author": {"id": "a"}}
    )
    path.write_text((line + "\n") * 5000)
    clock = FakeClock(0.0)
    h = make_harness(clock)
    src = ReplaySource(ReplayConfig(enabled=True, paths=[str(path)], speed=None), h.ctx)
    replay = asyncio.create_task(collect(src, clock))
    seen_by_others: list[int] = []

    async def other() -> None:
        seen_by_others.append(len(h.letters.items))

    await asyncio.create_task(other())
    assert await replay == []
    assert len(h.letters.items) == 5000
    assert seen_by_others[0] < 5000


def write_times(path: Path, times: list[float]) -> None:
    """One mention per line, ``t<i>`` dated ``times[i]`` (epoch seconds)."""
    rows = [
        {"id": f"t{i}", "text": "acme", "created_at": t, "author": {"id": "a"}}
        for i, t in enumerate(times)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


async def replay_times(tmp_path: Path, times: list[float], speed: float) -> list[float]:
    """When (clock seconds after the start) each line of a replay of `times` came out."""
    path = tmp_path / "times.jsonl"
    write_times(path, times)
    clock = FakeClock(1000.0)
    src = ReplaySource(
        ReplayConfig(enabled=True, paths=[str(path)], speed=speed), make_harness(clock).ctx
    )
    got = await collect(src, clock)
    assert [m.id for _, m in got] == [f"t{i}" for i in range(len(times))]
    return [w - 1000.0 for w, _ in got]


async def test_a_first_line_dated_years_early_does_not_stall_the_replay(tmp_path: Path) -> None:
    # QA: line 1 from 2001, the rest from 2024 one second apart, --speed 60: line 2 waited
    # (2024 - 2001) / 60 = 138 days. A gap waits at most 30 s, then pacing goes on from there.
    times = [1_000_000_000.0] + [T0 + i for i in range(1, 6)]
    emitted = await replay_times(tmp_path, times, speed=60)
    assert emitted == pytest.approx([0.0, 30.0, 30 + 1 / 60, 30 + 2 / 60, 30 + 3 / 60, 30 + 4 / 60])


async def test_a_first_line_dated_years_ahead_does_not_turn_pacing_off(tmp_path: Path) -> None:
    # every later line is "out of order" against a line from 2050, and went out at once
    times = [2_524_608_000.0] + [T0 + i for i in range(5)]
    emitted = await replay_times(tmp_path, times, speed=1)
    assert emitted == pytest.approx([0.0, 0.0, 1.0, 2.0, 3.0, 4.0])


async def test_a_stray_line_mid_stream_costs_at_most_one_capped_wait(tmp_path: Path) -> None:
    ahead = T0 + 50 * 365 * 86400.0  # a typo'd year
    emitted = await replay_times(tmp_path, [T0, T0 + 10, ahead, T0 + 11, T0 + 12, T0 + 14], 1)
    assert emitted == pytest.approx([0.0, 10.0, 40.0, 40.0, 41.0, 43.0])
    # one line from an hour before: out at once, and the schedule is the same as without it
    emitted = await replay_times(tmp_path, [T0, T0 + 10, T0 - 3600, T0 + 20, T0 + 25], 1)
    assert emitted == pytest.approx([0.0, 10.0, 10.0, 20.0, 25.0])


SPEEDS = st.sampled_from([0.5, 1.0, 60.0])


@settings(max_examples=300, deadline=None)
@given(times=st.lists(st.floats(0.0, 4e9), min_size=1, max_size=40), speed=SPEEDS)
def test_no_line_ever_waits_longer_than_max_wait(times: list[float], speed: float) -> None:
    p, now = None, 0.0
    for t in times:
        p, wait = pace(p, t, now, speed)
        assert 0.0 <= wait <= MAX_WAIT_SECONDS
        now += wait


@settings(max_examples=300, deadline=None)
@given(gaps=st.lists(st.floats(0.0, MAX_WAIT_SECONDS), max_size=40), speed=SPEEDS)
def test_gaps_up_to_max_wait_are_kept_exactly(gaps: list[float], speed: float) -> None:
    # wall gap g <=> event gap g * speed; the schedule must not drift over a long run
    p, now, t, due = pace(None, T0, 0.0, speed)[0], 0.0, T0, 0.0
    for g in gaps:
        t, due = t + g * speed, due + g
        p, wait = pace(p, t, now, speed)
        now += wait
        assert now == pytest.approx(due, abs=1e-4)  # float spacing at 1.7e9 s is 2.4e-7


def test_cli_caps_a_long_gap_at_max_wait(tmp_path: Path) -> None:
    # QA: `--speed 60` on a file whose line 1 is from 2001 printed line 1 and then nothing
    path = tmp_path / "early.jsonl"
    write_times(path, [1_000_000_000.0, T0 + 1, T0 + 2])
    cmd = [sys.executable, "-m", "monitor.collectors.replay", "--speed", "60", "--max-wait", "0.2"]
    out = subprocess.run(
        [*cmd, str(path)], capture_output=True, text=True, cwd=ROOT, timeout=30, check=True
    )
    assert [json.loads(x)["id"] for x in out.stdout.splitlines()] == ["t0", "t1", "t2"]
    with pytest.raises(SystemExit) as exit_:
        main(["--max-wait", "-1", str(path)])
    assert exit_.value.code == 2


async def test_a_finished_replay_is_not_stale(tmp_path: Path) -> None:
    # QA: a minute after the replay ended /healthz went 503 and the wall said STALE DATA, for good
    path = tmp_path / "a.jsonl"
    write_times(path, [T0, T0 + 1, T0 + 2])
    clock = FakeClock(T0)
    h = make_harness(clock)
    src = ReplaySource(ReplayConfig(enabled=True, paths=[str(path)], speed=1.0), h.ctx)
    watch_health(h.registry, lambda: [src.health], clock, stale_floor=60)
    async with aclosing(src.stream()) as stream:
        async for _ in stream:
            break
    assert src.health.stale(clock.now() + 3600)  # while it plays, silence counts as usual
    await collect(src, clock)
    clock.advance(7 * 86400.0)
    assert src.done
    assert health_dict(src.health, clock.now())["stale"] is False
    assert health_dict(src.health, clock.now())["finished"] is True  # the wall: "finished"
    assert h.metric("crisiswatch_source_stale", source="replay") == 0.0
    assert not src.health.connected  # nothing more will come; it is just not failing


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
async def test_an_oversized_line_is_dead_lettered_without_holding_it_in_memory(
    tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"big{suffix}"
    huge = 16 * 1024 * 1024  # QA had 200 MB peak at 447 MB RSS
    with path.open("wb") as f:
        if suffix == ".csv":
            f.write(b"id,created_at,text,author_id\n")
            f.write(b"b1,1714564800," + b"x" * huge + b",u1\n")
            f.write(b"b2,1714564801,acme after it,u2\n")
        else:
            f.write(b'{"id": "b1", "text": "' + b"x" * huge + b'"}\n')
            f.write(b'{"id": "b2", "text": "acme after it", "created_at": 1714564801, ')
            f.write(b'"author": {"id": "a"}}\n')
    clock = FakeClock(0.0)
    h = make_harness(clock)
    src = ReplaySource(ReplayConfig(enabled=True, paths=[str(path)], speed=None), h.ctx)
    tracemalloc.start()
    try:
        got = await collect(src, clock)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [m.id for _, m in got] == ["b2"]
    assert h.letters.reasons == {"oversize": 1}
    _, _, detail, payload = h.letters.items[0]
    line = 2 if suffix == ".csv" else 1
    assert detail.startswith(f"big{suffix}:{line}: ") and " > " in detail
    assert payload.startswith(b"b1," if suffix == ".csv" else b'{"id": "b1"')
    assert len(payload) <= 64 * 1024  # a prefix to recognise it by, not the line
    assert peak < 4 * 1024 * 1024


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["{tmp}/gone.jsonl"], "{tmp}/gone.jsonl: no such file"),  # exit 0 before
        (["{tmp}"], "{tmp}: is a directory"),
        (["--speed", "0", "{csv}"], "--speed must be a positive number (got 0.0)"),  # a traceback
        (["--speed", "nan", "{csv}"], "--speed must be a positive number (got nan)"),
        (["--speed", "-2", "{csv}"], "--speed must be a positive number (got -2.0)"),
        (["--max-wait", "nan", "{csv}"], "--max-wait must be a number of seconds >= 0 (got nan)"),
    ],
)
def test_cli_refuses_arguments_it_cannot_use_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    def fill(text: str) -> str:
        return text.format(tmp=tmp_path, csv=CSV)

    with pytest.raises(SystemExit) as exit_:
        main([fill(a) for a in argv])
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.err == f"python -m monitor.collectors.replay: error: {fill(says)}\n"
    assert captured.out == ""
