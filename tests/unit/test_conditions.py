"""Pure condition logic: the whole list, kstatus shape, transition times, events, timing."""

from __future__ import annotations

import datetime
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from destination_operator.api.spec import VerificationMode, parse_spec
from destination_operator.api.status import (
    DestinationStatus,
    Reason,
    StepOutcome,
    allowed_reasons,
)
from destination_operator.backoff import jittered_interval, next_delay
from destination_operator.conditions import (
    Event,
    build_status,
    compute_conditions,
    status_changed,
    transition_events,
)
from destination_operator.outcome import Outcome, StepName, StepResult, invalid_spec

T0 = datetime.datetime(2026, 11, 22, 7, 0, 0, tzinfo=datetime.UTC)


def at(minutes: int) -> datetime.datetime:
    return T0 + datetime.timedelta(minutes=minutes)


def stamp(minutes: int) -> str:
    return at(minutes).strftime("%Y-%m-%dT%H:%M:%SZ")


OK = Outcome(
    verified=True,
    reason=Reason.ProbeSucceeded,
    message="wrote and deleted probe object 'p/.destination-operator-probe/u.txt'",
    steps=(
        StepResult(StepName.Write, StepOutcome.Succeeded, 12),
        StepResult(StepName.Delete, StepOutcome.Succeeded, 8),
    ),
    duration_ms=20,
    object_key="p/.destination-operator-probe/u.txt",
    mode=VerificationMode.WriteDelete,
    fingerprint="0123456789abcdef",
    time=T0,
    probed=True,
)


def failed(reason: Reason, message: str = "it failed") -> Outcome:
    return Outcome(verified=False, reason=reason, message=message, time=T0)


def by_type(conditions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in conditions}


def compute(
    old: list[dict[str, Any]] | None = None,
    *,
    generation: int = 1,
    enabled: bool = True,
    archived: bool = False,
    outcome: Outcome | None = OK,
    minute: int = 0,
    stalled: bool = False,
) -> dict[str, dict[str, Any]]:
    return by_type(
        compute_conditions(
            old,
            generation=generation,
            enabled=enabled,
            archived=archived,
            outcome=outcome,
            now=at(minute),
            stalled=stalled,
        )
    )


# --- shape -------------------------------------------------------------------------------------


def test_verified_destination_is_ready_and_current() -> None:
    c = compute()
    assert list(c) == ["Ready", "Verified", "Archived"]
    assert (c["Verified"]["status"], c["Verified"]["reason"]) == ("True", "ProbeSucceeded")
    assert (c["Ready"]["status"], c["Ready"]["reason"]) == ("True", "Ready")
    assert (c["Archived"]["status"], c["Archived"]["reason"]) == ("False", "NotArchived")
    for item in c.values():
        assert item["observedGeneration"] == 1
        assert item["lastTransitionTime"] == stamp(0)
        assert set(item) == {
            "type",
            "status",
            "observedGeneration",
            "lastTransitionTime",
            "reason",
            "message",
        }


def test_pending_probe_is_reconciling() -> None:
    c = compute(outcome=None, generation=3)
    assert (c["Verified"]["status"], c["Verified"]["reason"]) == ("Unknown", "Pending")
    assert c["Ready"]["status"] == "Unknown"
    assert (c["Reconciling"]["status"], c["Reconciling"]["reason"]) == ("True", "Verifying")
    assert "Stalled" not in c
    assert "generation 3" in c["Reconciling"]["message"]


@pytest.mark.parametrize(
    "reason", [Reason.InvalidSpec, Reason.SecretNotFound, Reason.SecretKeyMissing]
)
def test_failures_a_person_must_fix_are_stalled(reason: Reason) -> None:
    # which failures those are is decide's to say (test_decide.py), here it is told
    c = compute(outcome=failed(reason), stalled=True)
    assert (c["Stalled"]["status"], c["Stalled"]["reason"]) == ("True", reason.value)
    assert "Reconciling" not in c
    assert (c["Ready"]["status"], c["Ready"]["reason"]) == ("False", reason.value)


@pytest.mark.parametrize(
    "reason",
    [
        Reason.AuthenticationFailed,
        Reason.AccessDenied,
        Reason.BucketNotFound,
        Reason.EndpointUnreachable,
        Reason.TLSError,
        Reason.Timeout,
        Reason.EndpointBlocked,
        Reason.ProbeFailed,
    ],
)
def test_other_failures_are_retried(reason: Reason) -> None:
    c = compute(outcome=failed(reason, "details"))
    assert (c["Verified"]["status"], c["Verified"]["reason"]) == ("False", reason.value)
    assert c["Verified"]["message"] == "details"
    assert (c["Reconciling"]["status"], c["Reconciling"]["reason"]) == ("True", "Retrying")
    assert "Stalled" not in c


def test_disabled_is_unknown_and_has_no_ready_condition() -> None:
    # kstatus reads Ready=False as InProgress for ever; no Ready reads as Current (at rest)
    c = compute(enabled=False, outcome=None)
    assert (c["Verified"]["status"], c["Verified"]["reason"]) == ("Unknown", "Disabled")
    assert "Ready" not in c
    assert "Reconciling" not in c and "Stalled" not in c


def test_archived_wins_over_disabled() -> None:
    c = compute(enabled=False, archived=True, outcome=None)
    assert (c["Archived"]["status"], c["Archived"]["reason"]) == ("True", "Archived")
    assert (c["Verified"]["status"], c["Verified"]["reason"]) == ("Unknown", "Archived")
    assert "Ready" not in c


def test_invalid_spec_wins_over_flags() -> None:
    c = compute(
        archived=True,
        outcome=invalid_spec("s3Compatible.bucket", "Required value"),
        stalled=True,
    )
    assert c["Verified"]["reason"] == "InvalidSpec"
    assert "spec.s3Compatible.bucket" in c["Verified"]["message"]
    assert c["Stalled"]["status"] == "True"
    assert c["Archived"]["status"] == "True"


@pytest.mark.parametrize(
    ("enabled", "archived", "outcome"),
    [
        (True, False, OK),
        (True, False, None),
        (False, False, None),
        (True, True, None),
        *[
            (True, False, failed(r))
            for r in Reason
            if r.value
            in {
                "InvalidSpec",
                "SecretNotFound",
                "SecretKeyMissing",
                "AuthenticationFailed",
                "AccessDenied",
                "BucketNotFound",
                "EndpointUnreachable",
                "TLSError",
                "Timeout",
                "EndpointBlocked",
                "ProbeFailed",
            }
        ],
    ],
)
def test_every_reason_is_one_the_api_allows(
    enabled: bool, archived: bool, outcome: Outcome | None
) -> None:
    for item in compute(enabled=enabled, archived=archived, outcome=outcome).values():
        assert Reason(item["reason"]) in allowed_reasons(item["type"], item["status"]), item


# --- transition times ---------------------------------------------------------------------------


def test_transition_time_changes_only_when_status_flips() -> None:
    first = compute_conditions(
        None, generation=1, enabled=True, archived=False, outcome=OK, now=at(0)
    )
    # the same status again, later, with another message and generation: times kept
    again = by_type(
        compute_conditions(
            first,
            generation=2,
            enabled=True,
            archived=False,
            outcome=Outcome(verified=True, reason=Reason.ProbeSucceeded, message="other"),
            now=at(5),
        )
    )
    assert again["Verified"]["lastTransitionTime"] == stamp(0)
    assert again["Ready"]["lastTransitionTime"] == stamp(0)
    assert again["Verified"]["observedGeneration"] == 2
    # a flip: new time for the flipped ones only
    flip = compute_conditions(
        list(again.values()),
        generation=2,
        enabled=True,
        archived=False,
        outcome=failed(Reason.Timeout),
        now=at(10),
    )
    c = by_type(flip)
    assert c["Verified"]["lastTransitionTime"] == stamp(10)
    assert c["Ready"]["lastTransitionTime"] == stamp(10)
    assert c["Archived"]["lastTransitionTime"] == stamp(0)
    assert c["Reconciling"]["lastTransitionTime"] == stamp(10)
    # another reason, same status: time kept
    other = by_type(
        compute_conditions(
            flip,
            generation=2,
            enabled=True,
            archived=False,
            outcome=failed(Reason.AccessDenied),
            now=at(20),
        )
    )
    assert other["Verified"]["reason"] == "AccessDenied"
    assert other["Verified"]["lastTransitionTime"] == stamp(10)


def test_archived_time_is_when_it_was_archived() -> None:
    live = compute_conditions(
        None, generation=1, enabled=True, archived=False, outcome=OK, now=at(0)
    )
    archived = compute_conditions(
        live, generation=2, enabled=True, archived=True, outcome=None, now=at(30)
    )
    assert by_type(archived)["Archived"]["lastTransitionTime"] == stamp(30)
    still = compute_conditions(
        archived, generation=3, enabled=False, archived=True, outcome=None, now=at(90)
    )
    assert by_type(still)["Archived"]["lastTransitionTime"] == stamp(30)
    back = by_type(
        compute_conditions(
            still, generation=4, enabled=True, archived=False, outcome=OK, now=at(120)
        )
    )
    assert (back["Archived"]["status"], back["Archived"]["reason"]) == ("False", "Unarchived")
    assert back["Archived"]["lastTransitionTime"] == stamp(120)
    later = by_type(
        compute_conditions(
            list(back.values()), generation=4, enabled=True, archived=False, outcome=OK, now=at(180)
        )
    )
    assert later["Archived"]["reason"] == "Unarchived"
    assert later["Archived"]["lastTransitionTime"] == stamp(120)


STATES = st.sampled_from(
    [
        (True, False, OK),
        (True, False, None),
        (False, False, None),
        (True, True, None),
        (True, False, failed(Reason.Timeout)),
        (True, False, failed(Reason.SecretNotFound)),
    ]
)


@settings(max_examples=60, deadline=None)
@given(st.lists(STATES, min_size=1, max_size=8))
def test_times_move_exactly_when_statuses_flip(
    sequence: list[tuple[bool, bool, Outcome | None]],
) -> None:
    conditions: list[dict[str, Any]] | None = None
    for minute, (enabled, archived, outcome) in enumerate(sequence):
        new = compute_conditions(
            conditions,
            generation=1,
            enabled=enabled,
            archived=archived,
            outcome=outcome,
            now=at(minute),
        )
        old = by_type(conditions or [])
        for item in new:
            before = old.get(item["type"])
            if before is not None and before["status"] == item["status"]:
                assert item["lastTransitionTime"] == before["lastTransitionTime"]
            else:
                assert item["lastTransitionTime"] == stamp(minute)
        conditions = new


# --- the whole status ----------------------------------------------------------------------------

SPEC = parse_spec(
    {
        "type": "S3Compatible",
        "environment": "Development",
        "s3Compatible": {"endpoint": "http://127.0.0.1:9000", "bucket": "reports"},
        "credentials": {"secretRef": {"name": "creds"}},
    }
)


def status_for(
    old: dict[str, Any] | None, outcome: Outcome | None, minute: int = 0, **kw: Any
) -> dict[str, Any]:
    return build_status(
        old=old,
        generation=kw.pop("generation", 1),
        spec=kw.pop("spec", SPEC),
        raw_spec=kw.pop("raw_spec", None),
        outcome=outcome,
        now=at(minute),
        next_verification=kw.pop("next_verification", at(minute + 60)),
        verify_request=kw.pop("verify_request", None),
        stalled=kw.pop("stalled", False),
    )


def test_build_status_fits_the_status_schema() -> None:
    status = status_for(None, OK)
    schema = DestinationStatus.model_json_schema(by_alias=True)
    assert set(status) <= set(schema["properties"])
    probe_fields = set(schema["$defs"]["LastProbe"]["properties"])
    step_fields = set(schema["$defs"]["ProbeStep"]["properties"])
    assert set(status["lastProbe"]) <= probe_fields
    assert all(set(step) <= step_fields for step in status["lastProbe"]["steps"])
    parsed = DestinationStatus.model_validate(
        {k: v for k, v in status.items() if v is not None}, strict=False
    )
    assert parsed.last_probe is not None and parsed.last_probe.object_key == OK.object_key
    assert status["target"] == "http://127.0.0.1:9000/reports"
    assert status["lastVerifiedTime"] == stamp(0)
    assert status["nextVerificationTime"] == stamp(60)
    assert status["credentialsFingerprint"] == "0123456789abcdef"
    assert status["archivedTime"] is None


def test_a_failure_keeps_the_last_successful_probe_and_time() -> None:
    first = status_for(None, OK)
    second = status_for(first, failed(Reason.SecretNotFound), minute=5)
    assert second["lastProbe"] == first["lastProbe"]
    assert second["lastVerifiedTime"] == stamp(0)


def test_archived_status_has_archived_time_and_no_next_probe() -> None:
    archived_spec = SPEC.model_copy(update={"archived": True})
    status = status_for(status_for(None, OK), None, minute=7, spec=archived_spec)
    assert status["archivedTime"] == stamp(7)
    assert status["nextVerificationTime"] is None


def test_unparsable_spec_reads_flags_from_the_raw_spec() -> None:
    status = status_for(
        None,
        invalid_spec("type", "Required value"),
        spec=None,
        raw_spec={"archived": True},
        stalled=True,
    )
    c = by_type(status["conditions"])
    assert c["Archived"]["status"] == "True" and c["Stalled"]["status"] == "True"
    assert status["nextVerificationTime"] is None
    assert "target" not in status


def test_status_changed_ignores_order_and_absent_fields() -> None:
    status = status_for(None, OK, verify_request="r1")
    same = dict(status, conditions=list(reversed(status["conditions"])))
    assert not status_changed(status, same)
    assert not status_changed(status, status_for(status, OK, verify_request="r1"))
    assert not status_changed({**status, "extra": 1}, status)  # a merge patch leaves it alone
    assert status_changed(status, status_for(status, OK, minute=1, verify_request="r1"))
    assert status_changed(status, {**status, "lastHandledVerifyRequest": "r2"})
    assert status_changed(status, {**status, "lastVerifiedTime": None})
    assert not status_changed({}, {"archivedTime": None})
    assert status_changed(None, status)


# --- events ------------------------------------------------------------------------------------


def events(old: dict[str, Any] | None, new: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e.type, e.reason) for e in transition_events(old, new)]


def test_events_on_verification_transitions() -> None:
    ok = status_for(None, OK)
    assert events(None, ok) == []  # a first verification: the status says it, no Event
    assert events(ok, status_for(ok, OK, minute=60)) == []
    bad = status_for(ok, failed(Reason.AuthenticationFailed, "PutObject: SignatureDoesNotMatch"))
    found = transition_events(ok, bad)
    assert found == [
        Event(
            "Warning",
            "VerificationFailed",
            "AuthenticationFailed: PutObject: SignatureDoesNotMatch",
        )
    ]
    again = status_for(bad, failed(Reason.AuthenticationFailed, "another message"), minute=1)
    assert events(bad, again) == []  # the same failure repeating: no new event
    other = status_for(again, failed(Reason.AccessDenied), minute=2)
    assert events(again, other) == [("Warning", "VerificationFailed")]
    assert events(other, status_for(other, OK, minute=3)) == [("Normal", "Verified")]  # recovery


def test_first_failure_is_an_event() -> None:
    assert events(None, status_for(None, failed(Reason.SecretNotFound))) == [
        ("Warning", "VerificationFailed")
    ]


def test_archive_and_unarchive_events() -> None:
    archived_spec = SPEC.model_copy(update={"archived": True})
    ok = status_for(None, OK)
    archived = status_for(ok, None, minute=1, spec=archived_spec)
    assert events(ok, archived) == [("Normal", "Archived")]
    assert events(archived, status_for(archived, None, minute=2, spec=archived_spec)) == []
    back = status_for(archived, OK, minute=3)
    assert events(archived, back) == [("Normal", "Unarchived")]
    assert events(None, status_for(None, None, spec=archived_spec)) == [("Normal", "Archived")]
    disabled = status_for(None, None, spec=SPEC.model_copy(update={"enabled": False}))
    assert events(None, disabled) == []


# --- timing ------------------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    rng = random.Random(4)
    for failures, ceiling in [(1, 5), (2, 10), (3, 20), (4, 40), (7, 300), (500, 300)]:
        for _ in range(50):
            delay = next_delay(failures, 5, 300, rng)
            assert ceiling / 2 <= delay <= ceiling
    assert next_delay(0, 5, 300, rng) <= 5


@given(
    failures=st.integers(min_value=-3, max_value=10_000),
    base=st.floats(min_value=0.01, max_value=100),
    cap=st.floats(min_value=0.01, max_value=10_000),
    seed=st.integers(),
)
def test_backoff_is_never_above_the_cap_nor_zero(
    failures: int, base: float, cap: float, seed: int
) -> None:
    delay = next_delay(failures, base, cap, random.Random(seed))
    assert 0 < delay <= cap


def test_backoff_spreads_out() -> None:
    rng = random.Random(1)
    assert len({round(next_delay(3, 5, 300, rng), 3) for _ in range(20)}) > 10


def test_interval_jitter_only_adds() -> None:
    rng = random.Random(2)
    values = [jittered_interval(3600, 0.1, rng) for _ in range(200)]
    assert all(3600 <= v <= 3960 for v in values)
    assert max(values) - min(values) > 100
    assert jittered_interval(3600, 0, rng) == 3600
    assert jittered_interval(0, 0.1, rng) == 0
