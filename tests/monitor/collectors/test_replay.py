"""Replay of JSONL/CSV in event time (fake clock), as fast as possible, looping, and the CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from contextlib import aclosing
from pathlib import Path

from monitor.clock import FakeClock
from monitor.collectors.replay import ReplaySource
from monitor.config.sources import ReplayConfig
from monitor.decode import encode_mention
from monitor.model import Author, Mention

from .conftest import make_harness

ROOT = Path(__file__).parents[3]
CSV = ROOT / "tests/data/collectors/replay_sample.csv"
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


def test_cli_survives_a_csv_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        b"id,created_at,text,author_id\nl1,1714564800,caf\xe9 acme,u1\nl2,1714564801,ok,u2\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "monitor.collectors.replay", "--fast", str(path)],
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    lines = [json.loads(x) for x in out.stdout.decode("utf-8").splitlines()]
    assert [(x["id"], x["text"]) for x in lines] == [("l1", "caf\ufffd acme"), ("l2", "ok")]


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
