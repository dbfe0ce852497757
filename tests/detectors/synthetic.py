"""Seeded synthetic counts shared by the detector tests (the verdict fixture depends on the
exact draws, so the sampler must not change)."""

from __future__ import annotations

import random


def poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method: fine for the rates these tests use, and stable across Python versions."""
    k, p, limit = 0, 1.0, pow(2.718281828459045, -lam)
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
