"""What one verification returns, and what it is made of: leaves of the core.

`Outcome` is the result of one verification (or of deciding not to start
one), `StepResult` one step of its probe, `fingerprint` the one-way digest of
the Secret's data it used. `decide` and `conditions` read them; the probe
(`probe.verify`) and the providers make them. Nothing here does I/O.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from destination_operator.api.spec import VerificationMode
from destination_operator.api.status import Reason, StepOutcome, rfc3339
from destination_operator.errors import (
    DestinationError,
    InvalidSpecError,
    ProbeFailedError,
    SecretForbiddenError,
)
from destination_operator.expiry import Expiry

__all__ = [
    "FINGERPRINT_LABEL",
    "Outcome",
    "StepName",
    "StepOutcome",
    "StepResult",
    "failure",
    "fingerprint",
    "invalid_spec",
    "secret_forbidden",
    "secret_unreadable",
]

FINGERPRINT_LABEL = b"destinations.io/credentials-fingerprint/v2"
"""Fixed label in the HMAC key, so the digest means only this."""


class StepName(StrEnum):
    """The steps of a probe, in order."""

    Write = "Write"
    Delete = "Delete"


@dataclass(frozen=True, slots=True)
class StepResult:
    """One step of a probe: what, how it ended, how long it took, and a short message."""

    name: StepName
    outcome: StepOutcome
    duration_ms: int
    message: str = ""

    def as_status(self) -> dict[str, Any]:
        """The step as it appears in `status.lastProbe.steps`."""
        item: dict[str, Any] = {
            "name": self.name.value,
            "outcome": self.outcome.value,
            "durationMilliseconds": self.duration_ms,
        }
        if self.message:
            item["message"] = self.message
        return item


@dataclass(frozen=True, slots=True)  # one kept per Destination: no __dict__ each
class Outcome:
    """The result of one verification (or of deciding not to start one)."""

    verified: bool
    reason: Reason
    message: str
    steps: tuple[StepResult, ...] = ()
    duration_ms: int = 0
    object_key: str = ""
    mode: VerificationMode | None = None
    fingerprint: str = ""
    time: datetime.datetime | None = None
    probed: bool = field(default=False)  # a connection to the storage was attempted
    expiry: Expiry | None = None  # when the credentials expire, where that can be read

    @property
    def expired(self) -> bool:
        """Did the verification fail because the credentials had expired when it began?
        (Then no connection was made, and only a new Secret can change the outcome.)"""
        return (
            not self.verified
            and self.reason == Reason.AuthenticationFailed
            and self.expiry is not None
            and self.time is not None
            and self.expiry.passed(self.time)
        )

    def last_probe(self) -> dict[str, Any] | None:
        """`status.lastProbe` for this outcome; None when no probe was attempted."""
        if not self.probed:
            return None
        probe: dict[str, Any] = {
            "durationMilliseconds": self.duration_ms,
            "objectKey": self.object_key,
            "steps": [step.as_status() for step in self.steps],
        }
        if self.time is not None:
            probe["time"] = rfc3339(self.time)
        if self.mode is not None:
            probe["mode"] = self.mode.value
        return probe


def fingerprint(secret_data: Mapping[str, bytes] | None, key: str) -> str:
    """A short one-way digest of the Secret's data ("" when there is no Secret).

    HMAC-SHA256 over the sorted, length-prefixed key/value pairs; the first 16
    hex digits. It changes when any value changes, so a rotation is seen. The
    HMAC key is `key`, the Secret's uid: whoever may read a Destination's
    status but not the Secret cannot test guesses of a short value (a webhook
    token, say) against the digest, and a Secret deleted and made anew is a
    new input.
    """
    if secret_data is None:
        return ""
    digest = hmac.new(FINGERPRINT_LABEL + b"\0" + key.encode(), digestmod=hashlib.sha256)
    for name in sorted(secret_data):
        value = secret_data[name]
        raw = value if isinstance(value, bytes) else str(value).encode()
        encoded = name.encode()
        digest.update(len(encoded).to_bytes(4, "big") + encoded)
        digest.update(len(raw).to_bytes(8, "big") + raw)
    return digest.hexdigest()[:16]


def failure(
    error: DestinationError,
    *,
    time: datetime.datetime | None = None,
    fingerprint: str = "",
    object_key: str = "",
    mode: VerificationMode | None = None,
    expiry: Expiry | None = None,
) -> Outcome:
    """The outcome of a verification that failed with `error` before any probe."""
    return Outcome(
        verified=False,
        reason=error.reason,
        message=error.message,
        time=time,
        fingerprint=fingerprint,
        object_key=object_key,
        mode=mode,
        expiry=expiry,
    )


def invalid_spec(field_path: str, message: str) -> Outcome:
    """The outcome for a spec that breaks a rule (reason InvalidSpec)."""
    where = f"spec.{field_path}" if field_path and not field_path.startswith("spec") else field_path
    text = f"{where}: {message}" if where else message
    return failure(InvalidSpecError(text))


def secret_forbidden(message: str) -> Outcome:
    """The outcome when the API server refused the operator's read of the Secret.

    Reported as `SecretForbidden`, not `SecretNotFound`: the Secret may well exist, and
    the fix is a grant to the operator, not a Secret. Retried with backoff, since a grant
    changes neither the Destination nor the Secret and so queues no probe.
    """
    return failure(SecretForbiddenError(message))


def secret_unreadable(message: str) -> Outcome:
    """The outcome when reading the Secret failed with another refusal (reason ProbeFailed)."""
    return failure(ProbeFailedError(message))
