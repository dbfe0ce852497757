"""Demo crises: which of the embedded demo's scripted crises open an incident, and why not.

    .venv/bin/python bench/demo_crises.py [--hours 75] [--start 2023-11-14T22:13] [--set K=V]

Generates the demo's mentions (the seeded scenario `make run` streams, same origin rules:
history before the start, crises after it) minute by minute in event time and drives them
through the service's own enrichment, aggregation and detection stages — no server and no
clock, so 75 demo hours take about half a minute. Every scripted crisis is matched to its
brand's verdicts while it lasts:

- ``opened``: an incident opened (minutes after the crisis began);
- ``folded``: the brand's incident from an earlier crisis was still open, so the new one
  re-paged (only on a severity rise) or went unpaged;
- ``cooldown``: the score crossed ``open_threshold`` within ``cooldown_seconds`` of a resolve;
- ``low``: the score never reached ``open_threshold``.

Incidents opened outside every crisis are false alarms. Detection settings come from the
config (``--set key=value`` overrides one, e.g. ``--set season_halflife_days=1``), so a
change can be tried on the demo before `scripts/tune_detectors.py` scores it on NAB.
Not part of `make bench`; docs/benchmarks.md has the last run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from detectors.stage import DetectionStage, Verdict
from monitor.aggregate import Aggregator
from monitor.collectors.demo import Crisis, DemoScenario
from monitor.config import load_config
from monitor.enrich.enricher import Enricher

ROOT = Path(__file__).resolve().parents[1]
ORIGIN = 1_699_999_980.0  # 2023-11-14 22:13 UTC, a Tuesday evening (the default --start)


@dataclass
class Outcome:
    crisis: Crisis
    kind: str = "low"
    delay_min: float | None = None
    peak: float = 0.0


@dataclass
class Run:
    outcomes: list[Outcome] = field(default_factory=list)
    false_opens: list[tuple[str, float]] = field(default_factory=list)
    mentions: int = 0


def crises(scenario: DemoScenario, until: float) -> list[Crisis]:
    """Every crisis the scenario starts before ``until``, in order."""
    c = scenario.config
    out = []
    start = scenario.origin + c.first_crisis_after_seconds
    while start < until:
        crisis = scenario.crisis_at(start + 1.0)
        if crisis is not None:
            out.append(crisis)
        start += c.crisis_every_seconds
    return out


def run(
    config_path: Path,
    hours: float,
    backfill_hours: float,
    overrides: dict[str, Any],
    origin: float = ORIGIN,
) -> Run:
    cfg = load_config(config_path)
    demo = cfg.sources.demo
    detection = cfg.detection.model_validate(
        {**cfg.detection.model_dump(), **overrides}
    )  # validated like the config file: a bad --set names its key and value
    scenario = DemoScenario(demo, origin=origin)
    enricher = Enricher(cfg.topics, cfg.enrichment)
    agg = cfg.aggregation
    aggregator = Aggregator([t.name for t in cfg.topics], agg.bucket_seconds, 0)
    stage = DetectionStage(detection)
    end = origin + hours * 3600.0
    scripted = crises(scenario, end)  # the last may be cut off by the end: no outcome
    verdicts: dict[str, list[Verdict]] = {b: [] for b in demo.brands}
    result = Run()
    first, last = int((origin - backfill_hours * 3600.0) // 60), int(end // 60)
    started = time.monotonic()
    for m in range(first, last):
        batch = [mention for brand in demo.brands for mention in scenario.minute(brand, m)]
        result.mentions += len(batch)
        for e in enricher.enrich_batch(batch):
            if e.topics:
                aggregator.add(e)
        for bucket in aggregator.advance((m + 1) * 60.0):
            verdicts[bucket.series].append(stage.observe(bucket))
        if (m - first) % 1440 == 0:
            print(
                f"  demo hour {(m * 60.0 - origin) / 3600:6.1f}  "
                f"{result.mentions:,} mentions  {time.monotonic() - started:5.1f} s",
                file=sys.stderr,
            )
    for crisis in (c for c in scripted if c.end <= end):
        during = [v for v in verdicts[crisis.brand] if crisis.start <= v.t < crisis.end]
        o = Outcome(crisis, peak=max(v.score for v in during))
        opened = [v for v in during if v.onset == "open"]
        if opened:
            o.kind, o.delay_min = "opened", (opened[0].t - crisis.start) / 60.0
        elif during[0].active:
            o.kind = "folded"
        elif o.peak >= detection.open_threshold:
            o.kind = "cooldown"
        result.outcomes.append(o)
    for brand, vs in verdicts.items():
        for v in vs:
            if v.onset == "open" and not any(
                c.brand == brand and c.start <= v.t < c.end for c in scripted
            ):
                result.false_opens.append((brand, v.t))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, default=75.0, help="demo hours after the start")
    ap.add_argument("--backfill-hours", type=float, default=3.0, help="history before it")
    ap.add_argument("--config", type=Path, default=ROOT / "config" / "default.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument(
        "--start",
        default="2023-11-14T22:13",
        help="UTC time the demo starts, as the service logs it (its daily and weekly rhythm"
        " follow the clock)",
    )
    ap.add_argument("--json", action="store_true", help="one JSON line instead of the table")
    args = ap.parse_args()
    overrides = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    # to the millisecond, as the service logs it (`demo: crises scripted from …`): a crisis
    # 40 s earlier in its minute can open a bucket sooner or later than live
    origin = datetime.fromisoformat(args.start).replace(tzinfo=UTC).timestamp()
    r = run(args.config, args.hours, args.backfill_hours, overrides, origin)
    kinds = Counter(o.kind for o in r.outcomes)
    delays = [o.delay_min for o in r.outcomes if o.delay_min is not None]
    summary = {
        "crises": len(r.outcomes),
        **{k: kinds.get(k, 0) for k in ("opened", "folded", "cooldown", "low")},
        "median_delay_min": statistics.median(delays) if delays else None,
        "false_opens": len(r.false_opens),
        "start": args.start,
        "mentions": r.mentions,
    }
    if args.json:
        print(json.dumps(summary))
        return
    for i, o in enumerate(r.outcomes):
        c = o.crisis
        when = f"+{o.delay_min:.0f} min" if o.delay_min is not None else ""
        print(
            f"{i:3d}  demo hour {(c.start - origin) / 3600:5.1f}  {c.brand:10s} {c.term_en:12s}"
            f"  peak {o.peak:.2f}  {o.kind} {when}"
        )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
