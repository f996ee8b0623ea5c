"""Pure decisions: when to probe, what to write, and the races the engine meets."""

from __future__ import annotations

import datetime
import random
from typing import Any

import pytest

from destination_operator import decide
from destination_operator.api.spec import VerificationMode, parse_spec
from destination_operator.api.status import FAILURE_REASONS, Reason
from destination_operator.decide import Memory, Observed, Policy, SecretView
from destination_operator.outcome import Outcome

T0 = datetime.datetime(2026, 11, 24, 7, 0, 0, tzinfo=datetime.UTC)
POLICY = Policy(default_interval=3600, backoff_base=5, backoff_cap=300, jitter=0.0)
SECRET = SecretView(uid="s-uid", fingerprint="f1")


def raw_spec(**fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "S3Compatible",
        "environment": "Development",
        "s3Compatible": {"endpoint": "http://127.0.0.1:9000", "bucket": "reports"},
        "credentials": {"secretRef": {"name": "s3"}},
    }
    spec.update(fields)
    return spec


def observed(
    *,
    generation: int = 1,
    status: dict[str, Any] | None = None,
    secret: SecretView | None = SECRET,
    annotations: dict[str, str] | None = None,
    minutes: float = 0,
    **spec: Any,
) -> Observed:
    return Observed(
        generation=generation,
        raw_spec=raw_spec(**spec),
        annotations=annotations or {},
        status=status or {},
        secret=secret,
        now=T0 + datetime.timedelta(minutes=minutes),
    )


def success(now: datetime.datetime = T0, fingerprint: str = "f1") -> Outcome:
    return Outcome(
        verified=True,
        reason=Reason.ProbeSucceeded,
        message="wrote and deleted probe object 'k'",
        duration_ms=5,
        object_key="k",
        mode=VerificationMode.WriteDelete,
        fingerprint=fingerprint,
        time=now,
        probed=True,
    )


def failed(reason: Reason, now: datetime.datetime = T0) -> Outcome:
    return Outcome(verified=False, reason=reason, message="nope", time=now, probed=True)


def verified_once(memory: Memory, obs: Observed) -> dict[str, Any]:
    """Run plan + after_probe with a success; return the status the engine would store."""
    first = decide.plan(obs, memory, POLICY)
    assert first.probe
    after = decide.after_probe(
        obs, parse_spec(dict(obs.raw_spec)), success(obs.now), memory, POLICY, random.Random(1)
    )
    assert after.status is not None
    return after.status


def condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions", []) if c["type"] == kind), None)


def test_a_new_destination_says_reconciling_before_it_is_probed() -> None:
    plan = decide.plan(observed(), Memory(), POLICY)
    assert plan.probe
    assert plan.status is not None
    reconciling = condition(plan.status, "Reconciling")
    assert reconciling is not None and reconciling["status"] == "True"
    assert condition(plan.status, "Ready")["status"] == "Unknown"  # type: ignore[index]


def test_a_verified_destination_is_left_alone_until_due() -> None:
    memory = Memory()
    status = verified_once(memory, observed())
    again = decide.plan(observed(status=status, minutes=30), memory, POLICY)
    assert not again.probe and again.status is None
    assert again.requeue_after == 30 * 60
    due = decide.plan(observed(status=status, minutes=61), memory, POLICY)
    assert due.probe and due.status is None  # a re-verification costs one write, afterwards


def test_a_restart_trusts_a_status_that_reports_the_current_inputs() -> None:
    status = verified_once(Memory(), observed())
    fresh = Memory()  # a new process
    plan = decide.plan(observed(status=status, minutes=5), fresh, POLICY)
    assert not plan.probe and plan.status is None
    assert plan.requeue_after == 55 * 60


def test_a_restart_probes_when_the_secret_changed_while_it_was_down() -> None:
    status = verified_once(Memory(), observed())
    rotated = SecretView(uid="s-uid", fingerprint="f2")
    plan = decide.plan(observed(status=status, secret=rotated, minutes=5), Memory(), POLICY)
    assert plan.probe


def test_a_restart_probes_a_generation_the_status_does_not_report() -> None:
    status = verified_once(Memory(), observed())
    plan = decide.plan(observed(generation=2, status=status), Memory(), POLICY)
    assert plan.probe


def test_removing_the_verify_annotation_is_not_a_request() -> None:
    memory = Memory()
    asked = {"destinations.io/verify-requested-at": "100"}
    status = verified_once(memory, observed(annotations=asked))
    assert status["lastHandledVerifyRequest"] == "100"
    # the annotation removed, in this process and after a restart
    for mem in (memory, Memory()):
        plan = decide.plan(observed(status=status, minutes=1), mem, POLICY)
        assert not plan.probe
    # a new value is a request; the same value again is not
    newer = {"destinations.io/verify-requested-at": "200"}
    assert decide.plan(
        observed(status=status, annotations=newer, minutes=1), Memory(), POLICY
    ).probe
    assert not decide.plan(
        observed(status=status, annotations=asked, minutes=1), Memory(), POLICY
    ).probe


def test_a_spec_edit_during_a_probe_makes_the_result_stale() -> None:
    before = observed(generation=1)
    after = observed(generation=2)
    assert not decide.still_current(before, after)
    rotated = observed(secret=SecretView(uid="s-uid", fingerprint="f2"))
    assert not decide.still_current(before, rotated)
    assert decide.still_current(before, observed(generation=1, minutes=1))


def test_the_result_carries_the_generation_it_was_decided_on() -> None:
    memory = Memory()
    obs = observed(generation=3)
    decide.plan(obs, memory, POLICY)
    done = decide.after_probe(
        obs, parse_spec(dict(obs.raw_spec)), success(), memory, POLICY, random.Random(1)
    )
    assert done.status is not None and done.status["observedGeneration"] == 3


def test_a_missing_secret_waits_for_a_grace_period_then_stalls() -> None:
    memory = Memory()
    first = decide.plan(observed(secret=None), memory, POLICY)
    assert not first.probe and first.status is not None
    assert condition(first.status, "Reconciling")["status"] == "True"  # type: ignore[index]
    assert condition(first.status, "Stalled") is None
    assert condition(first.status, "Verified")["reason"] == "SecretNotFound"  # type: ignore[index]
    assert first.requeue_after == POLICY.secret_grace
    later = decide.plan(
        observed(secret=None, status=first.status, minutes=POLICY.secret_grace / 60),
        memory,
        POLICY,
    )
    assert later.status is not None
    assert condition(later.status, "Stalled")["status"] == "True"  # type: ignore[index]
    assert condition(later.status, "Reconciling") is None
    assert later.requeue_after is None  # only the Secret's creation wakes it now
    created = decide.plan(observed(status=later.status, minutes=2), memory, POLICY)
    assert created.probe


def test_failures_back_off_and_success_resets() -> None:
    memory = Memory()
    obs = observed()
    spec = parse_spec(dict(obs.raw_spec))
    rng = random.Random(1)
    delays = []
    for _ in range(4):
        decide.plan(obs, memory, POLICY)
        done = decide.after_probe(obs, spec, failed(Reason.Timeout), memory, POLICY, rng)
        assert done.requeue_after is not None
        delays.append(done.requeue_after)
        memory.next_due = obs.now  # due again
    assert delays == sorted(delays) and delays[-1] <= POLICY.backoff_cap
    assert condition(done.status or {}, "Reconciling")["reason"] == "Retrying"  # type: ignore[index]
    decide.plan(obs, memory, POLICY)
    decide.after_probe(obs, spec, success(), memory, POLICY, rng)
    assert memory.failures == 0


def test_a_type_without_provider_stalls_and_is_not_retried() -> None:
    memory = Memory()
    obs = observed()
    decide.plan(obs, memory, POLICY)
    done = decide.after_probe(
        obs,
        parse_spec(dict(obs.raw_spec)),
        failed(Reason.ProviderUnavailable),
        memory,
        POLICY,
        random.Random(1),
    )
    assert done.requeue_after is None
    assert done.status is not None
    assert condition(done.status, "Stalled")["status"] == "True"  # type: ignore[index]
    assert "nextVerificationTime" not in done.status or done.status["nextVerificationTime"] is None


STALLED = {
    Reason.InvalidSpec,
    Reason.SecretNotFound,
    Reason.SecretKeyMissing,
    Reason.SecretKeyInvalid,
    Reason.ProviderUnavailable,
    Reason.IdentityNotAllowed,
}


@pytest.mark.parametrize("reason", sorted(FAILURE_REASONS))
def test_a_failure_a_person_must_fix_is_stalled_and_any_other_is_retried(reason: Reason) -> None:
    memory = Memory()
    obs = observed()
    decide.plan(obs, memory, POLICY)
    done = decide.after_probe(
        obs, parse_spec(dict(obs.raw_spec)), failed(reason), memory, POLICY, random.Random(1)
    )
    assert done.status is not None
    stalled, reconciling = condition(done.status, "Stalled"), condition(done.status, "Reconciling")
    if reason in STALLED:
        assert stalled is not None and stalled["reason"] == reason.value
        assert reconciling is None
    else:
        assert stalled is None
        assert reconciling is not None and reconciling["reason"] == "Retrying"
    # only a missing provider waits for a change; every other failure is looked at again
    assert (done.requeue_after is None) == (reason == Reason.ProviderUnavailable)


def test_interval_zero_never_reprobes_and_unset_takes_the_operator_default() -> None:
    rng = random.Random(1)
    memory = Memory()
    obs = observed(verification={"interval": "0s"})
    decide.plan(obs, memory, POLICY)
    done = decide.after_probe(obs, parse_spec(dict(obs.raw_spec)), success(), memory, POLICY, rng)
    assert done.requeue_after is None
    memory = Memory()
    obs = observed()
    decide.plan(obs, memory, POLICY)
    custom = Policy(default_interval=600, jitter=0.0)
    done = decide.after_probe(obs, parse_spec(dict(obs.raw_spec)), success(), memory, custom, rng)
    assert done.requeue_after == 600


def test_disabled_and_archived_have_no_ready_condition_and_are_not_probed() -> None:
    for fields in ({"enabled": False}, {"archived": True}):
        plan = decide.plan(observed(**fields), Memory(), POLICY)
        assert not plan.probe and plan.status is not None
        assert condition(plan.status, "Ready") is None
        assert condition(plan.status, "Reconciling") is None
        assert condition(plan.status, "Stalled") is None


def test_an_invalid_spec_is_stalled_without_a_probe() -> None:
    plan = decide.plan(observed(pathPrefix="/abs"), Memory(), POLICY)
    assert not plan.probe and plan.status is not None
    assert condition(plan.status, "Stalled")["reason"] == "InvalidSpec"  # type: ignore[index]


def test_an_unwritten_result_is_written_on_the_next_pass() -> None:
    memory = Memory()
    obs = observed()
    decide.plan(obs, memory, POLICY)
    decide.after_probe(
        obs, parse_spec(dict(obs.raw_spec)), success(), memory, POLICY, random.Random(1)
    )
    # the patch failed: the stored status is still empty
    again = decide.plan(observed(minutes=1), memory, POLICY)
    assert not again.probe
    assert again.status is not None
    assert condition(again.status, "Verified")["status"] == "True"  # type: ignore[index]


def test_the_plan_carries_the_events_of_its_status_so_the_engine_computes_none() -> None:
    """A failure after a success is one Warning; the same failure again, none (its status
    does not change); success again, one Normal. The engine posts `plan.events` as they are."""
    memory = Memory()
    status = verified_once(memory, observed())
    spec = parse_spec(dict(observed().raw_spec))
    rng = random.Random(1)
    first = decide.plan(observed(status=status, minutes=61), memory, POLICY)
    assert first.probe and first.events == ()
    failing = decide.after_probe(
        observed(status=status, minutes=61), spec, failed(Reason.Timeout), memory, POLICY, rng
    )
    assert failing.status is not None
    assert [(e.type, e.reason) for e in failing.events] == [("Warning", "VerificationFailed")]
    assert "Timeout" in failing.events[0].message
    unchanged = decide.plan(observed(status=failing.status, minutes=62), memory, POLICY)
    assert unchanged.status is None and unchanged.events == ()
    memory.next_due = observed(minutes=63).now
    decide.plan(observed(status=failing.status, minutes=63), memory, POLICY)
    healed = decide.after_probe(
        observed(status=failing.status, minutes=63), spec, success(), memory, POLICY, rng
    )
    assert [(e.type, e.reason) for e in healed.events] == [("Normal", "Verified")]
