"""Replay of JSONL/CSV in event time (fake clock), as fast as possible, looping, and the CLI."""

from __future__ import annotations

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
