"""Benchmark of the alerting decision core (pure parts). Prints medians of 5 runs.

Run: .venv/bin/python bench/bench_alerting.py
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerting.escalation import EscalationState, Plan, Trigger, Wake, step
from alerting.incidents import IncidentBook
from alerting.schedules import Directory
from monitor.config.alerting import AlertingConfig
from tests.alerting.fakes import V

T0 = datetime(2026, 1, 14, 10, 0, tzinfo=UTC).timestamp()


def median_us(fn: Callable[[], int], runs: int = 5) -> float:
    """Median microseconds per operation; ``fn`` returns how many operations it did."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        n = fn()
        samples.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(samples)


def bench_verdicts() -> int:
    book = IncidentBook()
    topics = [f"topic{i}" for i in range(200)]
    for i, tp in enumerate(topics):
        book.on_verdict(V(tp, T0, 0.8, 3, onset="open"), T0 + i)
    n = 0
    for k in range(20):
        for tp in topics:
            book.on_verdict(V(tp, T0 + 60 * k, 0.8 + (k % 5) / 100, 3), T0 + 60 * k)
            n += 1
    return n


def bench_escalation() -> int:
    plan = Plan.from_config(AlertingConfig(default_receivers=["pager", "email"]))
    inc = {"id": "i", "key": "a/volume", "topic": "a", "kind": "volume", "severity": 2}
    n = 0
    for i in range(500):
        s, _ = step(EscalationState.new(f"i{i}", plan), Trigger(inc), T0)
        for k in range(1, 7):
            s, _ = step(s, Wake(), T0 + 300 * k)
        n += 7
    return n


def bench_who() -> int:
    sched = Directory.from_config(AlertingConfig()).schedules["follow-the-sun"]
    n = 0
    for i in range(20_000):
        sched.who(T0 + 97 * i)
        n += 1
    return n


def bench_next_change() -> int:
    sched = Directory.from_config(AlertingConfig()).schedules["follow-the-sun"]
    for i in range(20):
        sched.next_change(T0 + 3600 * i)
    return 20


def main() -> None:
    print(f"on_verdict (update, 200 open incidents): {median_us(bench_verdicts):8.1f} us/verdict")
    print(f"escalation step (trigger/wake, 2 rcv):   {median_us(bench_escalation):8.1f} us/step")
    print(f"Schedule.who (3 layers, restrictions):   {median_us(bench_who):8.1f} us/lookup")
    print(f"Schedule.next_change (minute scan):      {median_us(bench_next_change):8.1f} us/call")


if __name__ == "__main__":
    main()
