"""Leader election on a Lease: the timing decisions alone (pure; the clocks are arguments).

The semantics are client-go's `leaderelection`, which controller-runtime uses:

- A candidate may take the Lease when it is free (no holder: released), or
  when the record it last saw has not changed for the record's
  `leaseDurationSeconds`, timed by the candidate's own clock from the moment
  it saw the change (`observed_at`), never by the record's timestamps: the
  replicas' clocks need not agree.
- The holder renews every retry period; when it has not renewed for the renew
  deadline (shorter than the lease duration), it has lost, and stops before
  any candidate may take over.
- On shutdown the holder releases: the holder emptied, a lease of 1 s, so a
  candidate takes it at its next try (client-go's `ReleaseOnCancel`).
- Every write carries the resourceVersion read, so of two candidates that
  try at once the API server lets one through (409 for the other).

`Election` keeps what one replica saw and answers what to do next; the loop
that reads and writes the Lease is `engine.elector`.
"""

from __future__ import annotations

import datetime
import math
import random
from dataclasses import dataclass, replace
from enum import Enum

__all__ = ["Action", "Election", "Record", "Timing"]


@dataclass(frozen=True)
class Timing:
    """controller-runtime's defaults, in seconds."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


@dataclass(frozen=True)
class Record:
    """A Lease's spec, as the election reads and writes it."""

    holder: str = ""
    lease_duration_seconds: int = 0
    acquire_time: datetime.datetime | None = None
    renew_time: datetime.datetime | None = None
    transitions: int = 0


class Action(Enum):
    WAIT = "wait"  # another holds a valid Lease
    ACQUIRE = "acquire"  # free, expired or absent: take it
    RENEW = "renew"  # this replica holds it


class Election:
    """One replica's view of the Lease and its part in the election."""

    def __init__(self, identity: str, timing: Timing = Timing()) -> None:
        self.identity = identity
        self.timing = timing
        self.observed: Record | None = None
        self.observed_at = -math.inf  # monotonic seconds when `observed` last changed
        self.renewed_at: float | None = None  # None: not leading

    @property
    def leading(self) -> bool:
        return self.renewed_at is not None

    def observe(self, record: Record | None, now: float) -> None:
        """What a read of the Lease returned (None: there is none)."""
        if record != self.observed:
            self.observed, self.observed_at = record, now

    def expires_in(self, now: float) -> float:
        """Seconds until the observed holder's Lease runs out for this replica (0: now)."""
        record = self.observed
        if record is None or not record.holder:
            return 0.0
        return max(0.0, self.observed_at + record.lease_duration_seconds - now)

    def next_action(self, now: float) -> Action:
        record = self.observed
        if record is not None and record.holder == self.identity:
            return Action.RENEW
        if record is not None and record.holder and self.expires_in(now) > 0:
            return Action.WAIT
        return Action.ACQUIRE

    def to_write(self, action: Action, wall: datetime.datetime) -> Record:
        """The record to write for `action` (ACQUIRE or RENEW), at wall-clock time `wall`."""
        old = self.observed or Record()
        duration = max(1, math.ceil(self.timing.lease_duration))
        if action is Action.RENEW and old.holder == self.identity:
            return replace(old, lease_duration_seconds=duration, renew_time=wall)
        return Record(
            holder=self.identity,
            lease_duration_seconds=duration,
            acquire_time=wall,
            renew_time=wall,
            transitions=old.transitions + 1 if self.observed is not None else 0,
        )

    def wrote(self, record: Record, now: float) -> None:
        """`record` (this replica as holder) was stored: leading, renewed now."""
        self.observe(record, now)
        self.renewed_at = now

    def lost(self, now: float) -> bool:
        """Whether a leading replica must stop: another holds the Lease, or the renew
        deadline passed without a renewal."""
        if self.renewed_at is None:
            return False
        record = self.observed
        taken = record is not None and record.holder != self.identity
        return taken or now - self.renewed_at > self.timing.renew_deadline

    def overdue(self, now: float) -> float:
        """Seconds a leading replica's renewal is past the renew deadline (0: in time)."""
        if self.renewed_at is None:
            return 0.0
        return max(0.0, now - self.renewed_at - self.timing.renew_deadline)

    def wait_before_next(self, now: float, rng: random.Random) -> float:
        """Seconds until the next try: the retry period for the holder; for a candidate
        a jittered retry period (0.8 to 1), or less when the holder's Lease runs out
        sooner, so that a release or an expiry is acted on within the retry period."""
        if self.leading:
            return self.timing.retry_period
        jittered = self.timing.retry_period * (0.8 + 0.2 * rng.random())
        left = self.expires_in(now)
        return min(jittered, left + 0.05) if left > 0 else jittered

    def release(self, wall: datetime.datetime) -> Record | None:
        """The record that hands the Lease over at once, or None when not holding it."""
        record = self.observed
        if self.renewed_at is None or record is None or record.holder != self.identity:
            return None
        return replace(
            record, holder="", lease_duration_seconds=1, acquire_time=wall, renew_time=wall
        )

    def stepped_down(self) -> None:
        self.renewed_at = None
