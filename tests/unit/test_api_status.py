"""The status models and the documented condition types and reasons."""

from __future__ import annotations

import datetime

import pytest
from pydantic import ValidationError

from destination_operator.api.spec import SpecError
from destination_operator.api.status import (
    REASONS,
    Condition,
    ConditionStatus,
    ConditionType,
    DestinationStatus,
    EventReason,
    Reason,
    allowed_reasons,
    fit_status,
    fit_verify_request,
    rfc3339,
)

NOW = "2026-12-07T00:00:00Z"

FIXED_FALSE = {
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
}


def test_fixed_names_from_api_md() -> None:
    assert {t.value for t in ConditionType} == {
        "Verified",
        "Archived",
        "Ready",
        "Reconciling",
        "Stalled",
        "CredentialsExpiring",
    }
    verified = REASONS[ConditionType.Verified]
    assert {r.value for r in verified[ConditionStatus.TRUE]} == {"ProbeSucceeded"}
    assert {r.value for r in verified[ConditionStatus.FALSE]} >= FIXED_FALSE
    assert {r.value for r in verified[ConditionStatus.UNKNOWN]} == {
        "Disabled",
        "Archived",
        "Pending",
    }
    assert {e.value for e in EventReason} == {
        "Verified",
        "VerificationFailed",
        "Archived",
        "Unarchived",
        "CredentialsExpiring",
    }
    expiring = REASONS[ConditionType.CredentialsExpiring]
    assert {r.value for r in expiring[ConditionStatus.TRUE]} == {
        "CredentialsExpireSoon",
        "CredentialsExpired",
    }


def test_every_reason_is_documented_and_used() -> None:
    used = {r for by_status in REASONS.values() for reasons in by_status.values() for r in reasons}
    assert used == set(Reason)
    for reason in Reason:
        assert reason.value.isidentifier() and reason.value[0].isupper()


def test_ready_false_carries_every_verified_failure() -> None:
    failures = REASONS[ConditionType.Verified][ConditionStatus.FALSE]
    assert failures <= REASONS[ConditionType.Ready][ConditionStatus.FALSE]
    assert REASONS[ConditionType.Stalled][ConditionStatus.TRUE] <= failures


def test_allowed_reasons() -> None:
    assert allowed_reasons("Verified", "True") == {Reason.ProbeSucceeded}
    assert allowed_reasons(ConditionType.Stalled, ConditionStatus.FALSE) == frozenset()
    assert allowed_reasons("Nope", "True") == frozenset()


def test_spec_error_reason_is_invalid_spec() -> None:
    assert SpecError.reason == Reason.InvalidSpec


def test_status_round_trip_in_camel_case() -> None:
    raw = {
        "observedGeneration": 3,
        "conditions": [
            {
                "type": "Verified",
                "status": "False",
                "reason": "AccessDenied",
                "message": "write refused",
                "lastTransitionTime": "2024-05-01T12:00:00Z",
                "observedGeneration": 3,
            }
        ],
        "target": "s3://b",
        "lastVerifiedTime": "2024-05-01T11:00:00Z",
        "nextVerificationTime": "2024-05-01T13:00:00+00:00",
        "lastProbe": {
            "time": "2024-05-01T12:00:00Z",
            "durationMilliseconds": 120,
            "objectKey": "x/.probe/uid.txt",
            "mode": "WriteDelete",
            "steps": [
                {"name": "Write", "outcome": "Failed", "durationMilliseconds": 120, "message": "no"}
            ],
        },
        "credentialsFingerprint": "sha256:abc",
        "lastHandledVerifyRequest": "1714560000",
        "archivedTime": "2024-05-01T10:00:00Z",
    }
    status = DestinationStatus.model_validate(raw)
    assert status.model_dump(exclude_none=True, mode="json") == raw
    verified = status.condition(ConditionType.Verified)
    assert verified is not None and verified.reason == Reason.AccessDenied
    assert status.condition("Ready") is None


def test_status_fields_are_all_optional() -> None:
    assert DestinationStatus.model_validate({}).model_dump(exclude_none=True) == {}


def test_stored_status_with_unknown_fields_parses() -> None:
    assert DestinationStatus.parse({"target": "x", "kopf": {"progress": {}}}).target == "x"
    assert DestinationStatus.parse("garbage") == DestinationStatus()
    assert DestinationStatus.parse({"conditions": "garbage"}) == DestinationStatus()


@pytest.mark.parametrize(
    "change",
    [
        {"status": "Maybe"},
        {"reason": "not a reason"},
        {"reason": ""},
        {"lastTransitionTime": "yesterday"},
        {"lastTransitionTime": "2024-05-01"},
        {"lastTransitionTime": "2024-05-01T12:00:00"},
        {"observedGeneration": -1},
    ],
)
def test_condition_shape_is_enforced(change: dict[str, object]) -> None:
    raw = {
        "type": "Ready",
        "status": "True",
        "reason": "Ready",
        "message": "",
        "lastTransitionTime": "2024-05-01T12:00:00Z",
    }
    with pytest.raises(ValidationError):
        Condition.model_validate(raw | change)


def test_fit_status_cuts_each_string_to_its_crd_limit() -> None:
    """One string over its maxLength makes the API server refuse the whole status patch."""
    long = "x" * 50_000
    status = {
        "target": long,
        "lastHandledVerifyRequest": long,
        "credentialsFingerprint": "abc",
        "conditions": [
            {
                "type": "Verified",
                "status": "False",
                "reason": "ProbeFailed",
                "message": long,
                "lastTransitionTime": NOW,
            }
        ],
        "lastProbe": {
            "time": NOW,
            "objectKey": long,
            "steps": [{"name": "Write", "outcome": "Failed", "message": long}],
        },
    }
    fitted = fit_status(status)
    limits = {
        "target": 2048,
        "lastHandledVerifyRequest": 256,
        "message": 32768,
        "objectKey": 1024,
        "step": 4096,
    }
    assert len(fitted["target"]) == limits["target"] and fitted["target"].endswith("…")
    assert len(fitted["lastHandledVerifyRequest"]) == limits["lastHandledVerifyRequest"]
    assert len(fitted["conditions"][0]["message"]) == limits["message"]
    assert len(fitted["lastProbe"]["objectKey"]) == limits["objectKey"]
    assert len(fitted["lastProbe"]["steps"][0]["message"]) == limits["step"]
    assert fitted["credentialsFingerprint"] == "abc"
    assert status["target"] == long  # the input is left as it was
    DestinationStatus.model_validate(fitted, strict=False)  # the models hold the CRD's limits
    with pytest.raises(ValidationError):
        DestinationStatus.model_validate(status, strict=False)


def test_a_verify_request_too_long_to_store_still_compares_equal_once_handled() -> None:
    value = "2026-12-07T00:00:00Z " + "y" * 1000
    stored = fit_verify_request(value)
    assert len(stored) == 256 and fit_verify_request(value) == stored
    assert fit_status({"lastHandledVerifyRequest": stored})["lastHandledVerifyRequest"] == stored
    assert fit_verify_request("2026-12-07T00:00:00Z") == "2026-12-07T00:00:00Z"


def test_times_are_written_in_utc_to_the_second_and_read_back() -> None:
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    moment = datetime.datetime(2026, 11, 22, 9, 0, 5, 999_999, tzinfo=plus_two)
    assert rfc3339(moment) == "2026-11-22T07:00:05Z"
    assert rfc3339(datetime.datetime(2026, 11, 22, 7, 0, 5)) == "2026-11-22T07:00:05Z"  # naive: UTC
    status = DestinationStatus.model_validate({"lastVerifiedTime": rfc3339(moment)})
    assert status.last_verified_time == "2026-11-22T07:00:05Z"
