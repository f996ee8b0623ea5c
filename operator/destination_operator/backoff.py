"""Retry timing, pure: how long to wait after failures, and a jittered interval.

The decisions (`decide`) and the work queue's per-key rate limiting (`engine`)
both take their delays from here; the random source is an argument, so every
delay is reproducible in a test.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["RandomLike", "jittered_interval", "next_delay"]


class RandomLike(Protocol):
    """What the timing functions need of a random source (`random.Random` has it)."""

    def uniform(self, a: float, b: float) -> float: ...


def next_delay(failures: int, base: float, cap: float, rng: RandomLike) -> float:
    """Seconds to wait after `failures` consecutive failures: exponential, jittered, capped.

    The n-th failure waits between half and all of `min(cap, base * 2**(n-1))`
    ("equal jitter": spread out, yet never a hot loop).
    """
    exponent = min(max(failures, 1) - 1, 62)
    ceiling = min(cap, base * (2.0**exponent))
    return rng.uniform(ceiling / 2, ceiling)


def jittered_interval(interval: float, jitter: float, rng: RandomLike) -> float:
    """`interval` plus up to `jitter` (a fraction) of it at random, so probes spread out."""
    if interval <= 0:
        return 0.0
    return interval + rng.uniform(0.0, max(0.0, jitter) * interval)
