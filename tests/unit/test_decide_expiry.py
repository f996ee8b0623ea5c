"""Expiring credentials in the pure core: the status field, the CredentialsExpiring condition
and its Warning event, a wake-up when the expiry enters the window (no probe), a verification
just after the expiry, and an expired outcome Stalled until the Secret changes."""

from __future__ import annotations

import datetime
import random
from dataclasses import replace
from typing import Any

from destination_operator import conditions, decide
from destination_operator.api.spec import VerificationMode, parse_spec
from destination_operator.api.status import ConditionType, Reason
from destination_operator.decide import Memory, Observed, Policy, SecretView
from destination_operator.errors import AuthenticationFailedError, CredentialsExpiredError
from destination_operator.expiry import Expiry
from destination_operator.outcome import Outcome, failure

T0 = datetime.datetime(2026, 11, 24, 7, 0, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
POLICY = Policy(default_interval=3600, backoff_base=5, backoff_cap=300, jitter=0.0)
SECRET = SecretView(uid="s-uid", fingerprint="f1")
SOURCE = "the SAS token in the Secret's sasToken"


def observed(
    now: datetime.datetime = T0,
    *,
    status: dict[str, Any] | None = None,
    secret: SecretView = SECRET,
    interval: str | None = None,
    **spec_fields: Any,
) -> Observed:
    raw: dict[str, Any] = {
        "type": "AzureBlobStorage",
        "azureBlobStorage": {"storageAccountName": "acct", "containerName": "reports"},
        "credentials": {"secretRef": {"name": "azure"}},
        **spec_fields,
    }
    if interval is not None:
        raw["verification"] = {"interval": interval}
    return Observed(
        generation=1, raw_spec=raw, annotations={}, status=status or {}, secret=secret, now=now
    )


def success(at: datetime.datetime, now: datetime.datetime = T0) -> Outcome:
    return Outcome(
        verified=True,
        reason=Reason.ProbeSucceeded,
        message="wrote and deleted probe object 'k'",
        object_key="k",
        mode=VerificationMode.WriteDelete,
        fingerprint="f1",
        time=now,
        probed=True,
        expiry=Expiry(at, SOURCE),
    )


def expired(at: datetime.datetime, now: datetime.datetime) -> Outcome:
    error = CredentialsExpiredError(f"{SOURCE} expired at ...; nothing was sent")
    return failure(error, time=now, fingerprint="f1", expiry=Expiry(at, SOURCE))


def probed(obs: Observed, outcome: Outcome, memory: Memory, policy: Policy = POLICY) -> Any:
    first = decide.plan(obs, memory, policy)
    assert first.probe
    spec = parse_spec(dict(obs.raw_spec))
    return decide.after_probe(obs, spec, outcome, memory, policy, random.Random(1))


def condition(status: dict[str, Any], kind: str) -> Any:
    return conditions.find_condition(status.get("conditions"), ConditionType(kind))


def test_an_expiry_beyond_the_window_is_written_and_not_expiring() -> None:
    at = T0 + 30 * DAY
    plan = probed(observed(), success(at), Memory())
    assert plan.status["credentialsExpiry"] == "2026-12-24T07:00:00Z"
    expiring = condition(plan.status, "CredentialsExpiring")
    assert expiring is not None
    assert (expiring["status"], expiring["reason"]) == ("False", "CredentialsExpireLater")
    assert expiring["message"] == f"{SOURCE} expires at 2026-12-24T07:00:00Z"
    assert plan.events == ()  # a first verification posts no Event
    assert plan.requeue_after == 3600  # the interval comes first


def test_an_expiry_within_the_window_is_expiring_with_one_warning() -> None:
    memory = Memory()
    at = T0 + 3 * DAY
    plan = probed(observed(), success(at), memory)
    expiring = condition(plan.status, "CredentialsExpiring")
    assert expiring is not None
    assert (expiring["status"], expiring["reason"]) == ("True", "CredentialsExpireSoon")
    assert expiring["message"] == f"{SOURCE} expires at 2026-11-27T07:00:00Z, within 14 days"
    warning = [e for e in plan.events if e.reason == "CredentialsExpiring"]
    assert [(e.type, e.message) for e in warning] == [("Warning", expiring["message"])]
    ready = condition(plan.status, "Ready")
    assert ready is not None and ready["status"] == "True"  # still works: still Ready
    assert condition(plan.status, "Stalled") is None
    assert condition(plan.status, "Reconciling") is None

    # The next verification passes again: the message is the same, no second warning.
    again = observed(T0 + datetime.timedelta(hours=1), status=plan.status)
    later = probed(again, success(at, again.now), memory)
    assert not [e for e in later.events if e.reason == "CredentialsExpiring"]


def test_entering_the_window_is_written_without_a_probe() -> None:
    """Interval 0s (never periodically): the operator wakes when the expiry enters the window
    and writes CredentialsExpiring=True with its warning, then verifies just after the expiry."""
    memory = Memory()
    at = T0 + 20 * DAY
    plan = probed(observed(interval="0s"), success(at), memory)
    assert plan.requeue_after == (6 * DAY).total_seconds()  # 20 days - the 14-day window
    assert plan.status["nextVerificationTime"] == "2026-12-14T07:00:01Z"  # just after the expiry

    woken = decide.plan(observed(T0 + 6 * DAY, status=plan.status, interval="0s"), memory, POLICY)
    assert not woken.probe
    assert woken.status is not None
    expiring = condition(woken.status, "CredentialsExpiring")
    assert expiring is not None and expiring["reason"] == "CredentialsExpireSoon"
    assert [e.reason for e in woken.events] == ["CredentialsExpiring"]
    assert woken.requeue_after == (14 * DAY + datetime.timedelta(seconds=1)).total_seconds()

    due = observed(at + datetime.timedelta(seconds=1), status=woken.status, interval="0s")
    assert decide.plan(due, memory, POLICY).probe


def test_expired_credentials_are_stalled_until_the_secret_changes() -> None:
    memory = Memory()
    at = T0 - DAY
    plan = probed(observed(), expired(at, T0), memory)
    status = plan.status
    verified = condition(status, "Verified")
    assert verified is not None
    assert (verified["status"], verified["reason"]) == ("False", "AuthenticationFailed")
    stalled = condition(status, "Stalled")
    assert stalled is not None and stalled["status"] == "True"
    assert stalled["reason"] == "AuthenticationFailed"
    assert condition(status, "Reconciling") is None
    expiring = condition(status, "CredentialsExpiring")
    assert expiring is not None
    assert (expiring["status"], expiring["reason"]) == ("True", "CredentialsExpired")
    assert expiring["message"] == f"{SOURCE} expired at 2026-11-23T07:00:00Z"
    assert status["credentialsExpiry"] == "2026-11-23T07:00:00Z"
    assert status["nextVerificationTime"] is None
    assert plan.requeue_after is decide.FOREVER
    assert {e.reason for e in plan.events} >= {"VerificationFailed", "CredentialsExpiring"}

    # Nothing is retried, however long one waits ...
    later = observed(T0 + 30 * DAY, status=status)
    assert not decide.plan(later, memory, POLICY).probe
    # ... until the Secret changes.
    rotated = observed(T0 + 30 * DAY, status=status, secret=SecretView("s-uid", "f2"))
    assert decide.plan(rotated, memory, POLICY).probe


def test_an_authentication_failure_without_an_expiry_is_still_retried() -> None:
    memory = Memory()
    refused = failure(AuthenticationFailedError("403 AuthenticationFailed"), time=T0)
    refused = replace(refused, probed=True, fingerprint="f1")
    plan = probed(observed(), refused, memory)
    assert condition(plan.status, "Stalled") is None
    reconciling = condition(plan.status, "Reconciling")
    assert reconciling is not None and reconciling["reason"] == "Retrying"
    assert 0 < plan.requeue_after <= 5  # retried with backoff


def test_a_rejection_by_the_service_with_a_future_expiry_is_retried() -> None:
    """The service refused a SAS whose se is ahead (a revoked key, say): not expired."""
    memory = Memory()
    refused = Outcome(
        verified=False,
        reason=Reason.AuthenticationFailed,
        message="PutBlob: AuthenticationFailed",
        fingerprint="f1",
        time=T0,
        probed=True,
        expiry=Expiry(T0 + 3 * DAY, SOURCE),
    )
    assert not refused.expired
    plan = probed(observed(), refused, memory)
    assert condition(plan.status, "Stalled") is None
    expiring = condition(plan.status, "CredentialsExpiring")
    assert expiring is not None and expiring["reason"] == "CredentialsExpireSoon"


def test_the_window_is_a_setting() -> None:
    at = T0 + 3 * DAY
    narrow = Policy(default_interval=3600, jitter=0.0, expiry_window=DAY.total_seconds())
    plan = probed(observed(), success(at), Memory(), narrow)
    expiring = condition(plan.status, "CredentialsExpiring")
    assert expiring is not None and expiring["reason"] == "CredentialsExpireLater"
    wide = Policy(default_interval=3600, jitter=0.0, expiry_window=(7 * DAY).total_seconds())
    plan = probed(observed(), success(at), Memory(), wide)
    expiring = condition(plan.status, "CredentialsExpiring")
    assert expiring is not None and expiring["reason"] == "CredentialsExpireSoon"
    assert expiring["message"].endswith("within 7 days")


def test_no_readable_expiry_writes_neither_field_nor_condition() -> None:
    memory = Memory()
    first = probed(observed(), success(T0 + 3 * DAY), memory)
    assert first.status["credentialsExpiry"]
    rotated = observed(
        T0 + datetime.timedelta(hours=1), status=first.status, secret=SecretView("s-uid", "f2")
    )
    plain = replace(success(T0), expiry=None, fingerprint="f2")
    plan = probed(rotated, plain, memory)
    assert plan.status["credentialsExpiry"] is None  # a merge patch removes it
    assert condition(plan.status, "CredentialsExpiring") is None


def test_disabled_and_archived_drop_the_expiry() -> None:
    memory = Memory()
    first = probed(observed(), success(T0 + 3 * DAY), memory)
    for fields in ({"enabled": False}, {"archived": True}):
        plan = decide.plan(observed(status=first.status, **fields), memory, POLICY)
        assert plan.status is not None
        assert plan.status["credentialsExpiry"] is None
        assert condition(plan.status, "CredentialsExpiring") is None


def test_a_restart_wakes_for_a_stored_expiry_entering_the_window() -> None:
    memory = Memory()
    at = T0 + 20 * DAY
    stored = probed(observed(interval="0s"), success(at), memory).status
    restarted = Memory()
    plan = decide.plan(observed(T0 + DAY, status=stored, interval="0s"), restarted, POLICY)
    assert not plan.probe and plan.status is None  # trusted as stored
    assert plan.requeue_after == (5 * DAY).total_seconds()
    due = observed(T0 + 6 * DAY, status=stored, interval="0s")
    assert decide.plan(due, restarted, POLICY).probe
