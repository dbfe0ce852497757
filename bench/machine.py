"""A machine-speed reference printed beside absolute timings.

These benchmarks run on shared 2-core machines whose single-thread speed differs by up to
2x between sessions; an absolute target (e.g. 20 µs per series-bucket) is only comparable
across runs together with the speed of the machine that produced it. The reference is a
fixed pure-Python loop of the kind the detectors run (float EWMA updates, a log, a branch),
best of five, in nanoseconds per iteration: lower is a faster machine.
"""

from __future__ import annotations

import math
import time


def reference_ns(n: int = 200_000, repeats: int = 5) -> float:
    """Best-of-``repeats`` nanoseconds per iteration of a fixed float loop."""
    best = math.inf
    for _ in range(repeats):
        ex, em, sp = 0.0, 0.0, 0.3
        t0 = time.perf_counter()
        for i in range(n):
            x = float(i % 17)
            ex += 0.1 * (x - ex)
            em += 0.1 * (8.0 - em)
            r = abs(math.log((ex + 2.0) / (em + 2.0)))
            if r > sp:
                sp += 0.01 * (r - sp)
        best = min(best, (time.perf_counter() - t0) / n * 1e9)
    return best


if __name__ == "__main__":
    print(f"machine reference: {reference_ns():.1f} ns per loop iteration (lower = faster)")
