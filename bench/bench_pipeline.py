"""End-to-end throughput: a recorded stream replayed at maximum speed through the whole pipeline.

Path measured (the live one): JSON bytes -> decode -> dedup -> enrich (query match, language,
sentiment, terms) -> event-time aggregation -> watermark -> detection -> incidents (SQLite
store in a temp dir). The input is the demo simulator's output (3 brands, crises included),
encoded as the JSONL a replay reads. Reports the median of `--runs` runs, in mentions/s.

    .venv/bin/python bench/bench_pipeline.py [--hours 6] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from monitor.app import App
from monitor.clock import FakeClock
from monitor.collectors.demo import DemoScenario
from monitor.config import load_config
from monitor.decode import decode_json_bytes, encode_mention
from monitor.storage import open_store

ROOT = Path(__file__).resolve().parents[1]
ORIGIN = 1_767_225_600.0  # 2026-01-01T00:00Z


def recorded_stream(hours: float) -> list[bytes]:
    cfg = load_config(ROOT / "config/default.yaml").sources.demo
    scenario = DemoScenario(cfg, ORIGIN)
    lines = []
    for m in range(int(ORIGIN // 60), int((ORIGIN + hours * 3600) // 60)):
        for brand in cfg.brands:
            lines += [json.dumps(encode_mention(x)).encode() for x in scenario.minute(brand, m)]
    return lines


async def one_run(lines: list[bytes], batch: int) -> tuple[float, int, int]:
    config = load_config(ROOT / "config/default.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        config = config.model_copy(
            update={"storage": config.storage.model_copy(update={"url": f"sqlite:///{tmp}/b.db"})}
        )
        clock = FakeClock(ORIGIN)
        store = await open_store(config.storage.url)
        app = await App.open(config, clock, store)
        wm = config.aggregation.watermark_seconds
        t0 = time.perf_counter()
        for lo in range(0, len(lines), batch):
            mentions = [decode_json_bytes(raw) for raw in lines[lo : lo + batch]]
            app.pipeline.ingest(mentions)
            newest = app.pipeline.newest_event_time or ORIGIN
            clock.set(newest)
            await app.pipeline.advance(newest - wm)
        elapsed = time.perf_counter() - t0
        incidents = len(app.incidents.book.all_incidents())
        await app.close()
        await store.close()
    return len(lines) / elapsed, app.pipeline.processed, incidents


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=6.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    lines = recorded_stream(args.hours)
    print(f"stream: {len(lines)} mentions, {args.hours} h of 3 brands, batch {args.batch}")
    rates = []
    for i in range(args.runs):
        rate, processed, incidents = asyncio.run(one_run(lines, args.batch))
        rates.append(rate)
        print(f"run {i + 1}: {rate:,.0f} mentions/s ({processed} processed, {incidents} incidents)")
    print(f"median: {statistics.median(rates):,.0f} mentions/s end to end")


if __name__ == "__main__":
    main()
