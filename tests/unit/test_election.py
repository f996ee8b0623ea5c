"""The leader election's timing decisions, with a fake clock (election.py is pure)."""

from __future__ import annotations

import datetime
import random

from destination_operator.election import Action, Election, Record, Timing

WALL = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
TIMING = Timing(lease_duration=15.0, renew_deadline=10.0, retry_period=2.0)


def held_by(holder: str, *, transitions: int = 0, duration: int = 15) -> Record:
    return Record(holder, duration, WALL, WALL, transitions)


def test_no_lease_is_created_holding_it_with_no_transition() -> None:
    election = Election("a", TIMING)
    election.observe(None, now=0.0)
    assert election.next_action(0.0) is Action.ACQUIRE
    wanted = election.to_write(Action.ACQUIRE, WALL)
    assert (wanted.holder, wanted.lease_duration_seconds, wanted.transitions) == ("a", 15, 0)
    assert not election.leading
    election.wrote(wanted, now=0.1)
    assert election.leading
    assert election.next_action(2.0) is Action.RENEW


def test_a_candidate_waits_the_lease_duration_from_when_it_saw_the_record_change() -> None:
    election = Election("b", TIMING)
    election.observe(held_by("a"), now=100.0)
    # the record's own times say nothing: only the candidate's clock counts
    assert election.next_action(114.9) is Action.WAIT
    assert election.expires_in(110.0) == 5.0
    election.observe(held_by("a"), now=114.9)  # unchanged: the wait is not restarted
    assert election.next_action(115.1) is Action.ACQUIRE
    # a renewal (a changed record) restarts it
    renewed = Record("a", 15, WALL, WALL + datetime.timedelta(seconds=2), 0)
    election.observe(renewed, now=115.2)
    assert election.next_action(129.0) is Action.WAIT


def test_taking_over_counts_a_transition_and_sets_the_acquire_time() -> None:
    election = Election("b", TIMING)
    election.observe(held_by("a", transitions=4), now=0.0)
    later = WALL + datetime.timedelta(seconds=20)
    wanted = election.to_write(Action.ACQUIRE, later)
    assert (wanted.holder, wanted.transitions, wanted.acquire_time) == ("b", 5, later)


def test_renewing_keeps_the_acquire_time_and_the_transitions() -> None:
    election = Election("a", TIMING)
    mine = held_by("a", transitions=3)
    election.wrote(mine, now=0.0)
    later = WALL + datetime.timedelta(seconds=2)
    wanted = election.to_write(Action.RENEW, later)
    assert (wanted.acquire_time, wanted.renew_time, wanted.transitions) == (WALL, later, 3)


def test_a_released_lease_is_taken_at_once() -> None:
    election = Election("b", TIMING)
    election.observe(Record("", 1, WALL, WALL, 2), now=50.0)
    assert election.next_action(50.0) is Action.ACQUIRE
    assert election.to_write(Action.ACQUIRE, WALL).transitions == 3


def test_the_leader_has_lost_when_the_renew_deadline_passes() -> None:
    election = Election("a", TIMING)
    election.wrote(held_by("a"), now=0.0)
    assert not election.lost(10.0)
    assert election.overdue(10.0) == 0.0
    assert election.lost(10.01)
    assert election.overdue(12.0) == 2.0


def test_the_leader_has_lost_at_once_when_another_holds_the_lease() -> None:
    election = Election("a", TIMING)
    election.wrote(held_by("a"), now=0.0)
    election.observe(held_by("b"), now=1.0)
    assert election.lost(1.0)


def test_a_standby_never_loses_and_is_never_overdue() -> None:
    election = Election("b", TIMING)
    election.observe(held_by("a"), now=0.0)
    assert not election.lost(1000.0)
    assert election.overdue(1000.0) == 0.0


def test_release_empties_the_holder_with_a_one_second_lease() -> None:
    election = Election("a", TIMING)
    assert election.release(WALL) is None  # holds nothing
    election.wrote(held_by("a", transitions=7), now=0.0)
    released = election.release(WALL)
    assert released is not None
    assert (released.holder, released.lease_duration_seconds, released.transitions) == (
        "",
        1,
        7,
    )
    election.stepped_down()
    assert not election.leading
    assert election.release(WALL) is None


def test_a_candidate_tries_within_the_retry_period_or_as_the_lease_runs_out() -> None:
    election = Election("b", TIMING)
    rng = random.Random(7)
    election.observe(held_by("a"), now=0.0)
    waits = [election.wait_before_next(0.0, rng) for _ in range(200)]
    assert all(1.6 <= wait <= 2.0 for wait in waits), (min(waits), max(waits))
    # 0.5 s before it runs out, the next try is just after
    assert election.wait_before_next(14.5, rng) == 0.55
    election.wrote(held_by("b"), now=20.0)
    assert election.wait_before_next(20.0, rng) == 2.0


def test_the_defaults_are_controller_runtimes() -> None:
    assert Timing() == Timing(lease_duration=15.0, renew_deadline=10.0, retry_period=2.0)
