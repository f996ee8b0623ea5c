"""`Destination.status`: condition types, reasons with their polarity, and the status model.

Only the operator writes status. The CRD's status schema is generated from
`DestinationStatus` and is structural: every field below is declared, so
nothing the operator writes is pruned, and anything else is.

Conditions (`metav1.Condition` shape), with the reasons each may carry:

| type        | status  | reasons                                                       |
| ----------- | ------- | ------------------------------------------------------------- |
| Verified    | True    | ProbeSucceeded                                                |
| Verified    | False   | InvalidSpec, SecretNotFound, SecretForbidden,                 |
|             |         | SecretKeyMissing, SecretKeyInvalid, AuthenticationFailed,     |
|             |         | AccessDenied, BucketNotFound, EndpointUnreachable, TLSError,  |
|             |         | Timeout, EndpointBlocked, ProbeFailed, ProviderUnavailable,   |
|             |         | IdentityNotAllowed, IdentityNotConfigured,                    |
|             |         | ServiceAccountNotFound, TokenRequestForbidden,                |
|             |         | IdentityExchangeFailed                                        |
| Verified    | Unknown | Disabled, Archived, Pending                                   |
| Archived    | True    | Archived (its lastTransitionTime is when it was archived)     |
| Archived    | False   | NotArchived (never archived), Unarchived (archived before)    |
| Ready       | True    | Ready                                                         |
| Ready       | False   | the Verified=False reason                                     |
| Ready       | absent  | while disabled or archived (kstatus: Current, not InProgress) |
| Ready       | Unknown | Pending, Verifying                                            |
| Reconciling | True    | Verifying (a probe of new inputs is due or running),          |
|             |         | Retrying (the last probe failed; retried with backoff)        |
| Stalled     | True    | InvalidSpec, SecretKeyMissing, SecretKeyInvalid,              |
|             |         | ProviderUnavailable, IdentityNotAllowed, SecretNotFound after |
|             |         | a grace period, and AuthenticationFailed when the credentials |
|             |         | have expired                                                  |
|             |         | (a person must change something before a retry can succeed)   |
| Credentials-| True    | CredentialsExpireSoon (within the window),                    |
| Expiring    |         | CredentialsExpired (the expiry has passed)                    |
| Credentials-| False   | CredentialsExpireLater (an expiry is known, beyond the        |
| Expiring    |         | window); absent when no expiry can be read                    |

Reconciling and Stalled are "abnormal-true" as kstatus defines them: present
with status True while they apply, otherwise absent (or False).
`REASONS` holds this table for code and tests.
"""

from __future__ import annotations

import datetime
import types
import typing
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

from .rules import RuleModel
from .spec import VerificationMode

__all__ = [
    "REASONS",
    "Condition",
    "ConditionStatus",
    "ConditionType",
    "DestinationStatus",
    "EventReason",
    "LastProbe",
    "ProbeStep",
    "Reason",
    "StepOutcome",
    "allowed_reasons",
    "fit_status",
    "fit_verify_request",
    "rfc3339",
]


class ConditionType(StrEnum):
    """The condition types of a Destination."""

    Verified = "Verified"
    """True after a successful probe of the current spec and credentials."""
    Archived = "Archived"
    """True while spec.archived."""
    Ready = "Ready"
    """True only when enabled, not archived and verified (what kstatus, Flux, Argo CD read)."""
    Reconciling = "Reconciling"
    """kstatus: the operator is working towards the current spec."""
    Stalled = "Stalled"
    """kstatus: no progress is possible without a change by a person."""
    CredentialsExpiring = "CredentialsExpiring"
    """True when the credentials' readable expiry is within the window, or has passed."""


class ConditionStatus(StrEnum):
    """metav1.ConditionStatus."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Reason(StrEnum):
    """Condition reasons; which condition and status each belongs to is in `REASONS`."""

    # Verified=True
    ProbeSucceeded = "ProbeSucceeded"
    """The probe object was written (and deleted, in WriteDelete mode)."""

    # Verified=False (also Ready=False; Stalled=True as the table says)
    InvalidSpec = "InvalidSpec"
    """The stored spec breaks a rule of the models (it may predate the rule)."""
    SecretNotFound = "SecretNotFound"
    """spec.credentials.secretRef.name names no Secret in the Destination's namespace."""
    SecretForbidden = "SecretForbidden"
    """The API server does not let the operator read the Secret (RBAC: the message names the
    verb, resource, namespace and the operator's identity). Retried with backoff, so a grant
    heals it without an edit of the Destination."""
    SecretKeyMissing = "SecretKeyMissing"
    """The Secret lacks a key the type needs (the message names the key, never a value)."""
    SecretKeyInvalid = "SecretKeyInvalid"
    """A key's value has a line break or another control character inside (only its ends may
    hold whitespace): it would break or fold the HTTP header it is sent in. The message names
    the key and what is wrong, never the value. Only an edit of the Secret fixes it (Stalled)."""
    AuthenticationFailed = "AuthenticationFailed"
    """The service refused the credentials (unknown key, bad signature, expired token)."""
    AccessDenied = "AccessDenied"
    """The credentials are valid but may not write (or delete) there."""
    BucketNotFound = "BucketNotFound"
    """The bucket, container or webhook path does not exist."""
    EndpointUnreachable = "EndpointUnreachable"
    """No connection: DNS failure, connection refused, network unreachable."""
    TLSError = "TLSError"
    """The TLS handshake failed (untrusted or mismatched certificate)."""
    Timeout = "Timeout"
    """The probe took longer than spec.verification.timeout."""
    EndpointBlocked = "EndpointBlocked"
    """The endpoint resolves to a link-local, metadata, loopback or private address that the
    operator is not allowed to reach."""
    ProbeFailed = "ProbeFailed"
    """Any other failure of the probe."""
    IdentityNotAllowed = "IdentityNotAllowed"
    """The operator's settings refuse the identity the Destination asks for:
    serviceAccountName while object_level_identity is off, operatorIdentity while
    operator_identity is off. Decided before any token is requested; only the operator's
    settings change it (Stalled)."""
    IdentityNotConfigured = "IdentityNotConfigured"
    """The identity lacks what its cloud needs: the ServiceAccount has no annotation naming
    the cloud identity (the message names the annotation), or the operator's own identity is
    not set up (no projected token, no role). Retried with backoff."""
    ServiceAccountNotFound = "ServiceAccountNotFound"
    """spec.credentials.serviceAccountName names no ServiceAccount in the Destination's
    namespace. Retried with backoff."""
    TokenRequestForbidden = "TokenRequestForbidden"
    """The API server does not let the operator read the ServiceAccount or request its token
    (RBAC, or the admission policy on the operator's TokenRequests: the message names the
    verb and resource). Retried with backoff."""
    IdentityExchangeFailed = "IdentityExchangeFailed"
    """The cloud's token service refused the exchange of the ServiceAccount's token (wrong
    audience, untrusted issuer, a trust policy that does not name the ServiceAccount, an
    expired token) or could not be reached; the message names the service and its error
    code, never a token. Retried with backoff."""
    ProviderUnavailable = "ProviderUnavailable"
    """This build of the operator cannot probe the type: no provider, or its SDK extra is not
    installed (the message names the extra). Waits for a change or a restart."""

    # Verified=Unknown (while Disabled or Archived there is no Ready condition)
    Disabled = "Disabled"
    """spec.enabled is false: not probed."""
    Archived = "Archived"
    """spec.archived is true: not probed (also the reason of Archived=True)."""
    Pending = "Pending"
    """Not probed yet for the current inputs."""

    # Archived=False
    NotArchived = "NotArchived"
    """Never archived."""
    Unarchived = "Unarchived"
    """Archived before, unarchived since (lastTransitionTime says when)."""

    # Ready
    Ready = "Ready"
    """Ready=True: enabled, not archived, verified."""
    Verifying = "Verifying"
    """Ready=Unknown, Reconciling=True: a probe of new inputs is due or running."""

    # Reconciling=True
    Retrying = "Retrying"
    """The last probe failed with a condition that may pass by itself; retried with backoff."""

    # CredentialsExpiring
    CredentialsExpireSoon = "CredentialsExpireSoon"
    """True: the credentials expire within the operator's window (14 days by default)."""
    CredentialsExpired = "CredentialsExpired"
    """True: the credentials have expired (Verified=False, AuthenticationFailed, Stalled)."""
    CredentialsExpireLater = "CredentialsExpireLater"
    """False: the credentials expire after the window."""


FAILURE_REASONS: frozenset[Reason] = frozenset(
    {
        Reason.InvalidSpec,
        Reason.SecretNotFound,
        Reason.SecretForbidden,
        Reason.SecretKeyMissing,
        Reason.SecretKeyInvalid,
        Reason.AuthenticationFailed,
        Reason.AccessDenied,
        Reason.BucketNotFound,
        Reason.EndpointUnreachable,
        Reason.TLSError,
        Reason.Timeout,
        Reason.EndpointBlocked,
        Reason.ProbeFailed,
        Reason.ProviderUnavailable,
        Reason.IdentityNotAllowed,
        Reason.IdentityNotConfigured,
        Reason.ServiceAccountNotFound,
        Reason.TokenRequestForbidden,
        Reason.IdentityExchangeFailed,
    }
)
"""The reasons of Verified=False: the probe, or what it needs, failed."""

REASONS: dict[ConditionType, dict[ConditionStatus, frozenset[Reason]]] = {
    ConditionType.Verified: {
        ConditionStatus.TRUE: frozenset({Reason.ProbeSucceeded}),
        ConditionStatus.FALSE: FAILURE_REASONS,
        ConditionStatus.UNKNOWN: frozenset({Reason.Disabled, Reason.Archived, Reason.Pending}),
    },
    ConditionType.Archived: {
        ConditionStatus.TRUE: frozenset({Reason.Archived}),
        ConditionStatus.FALSE: frozenset({Reason.NotArchived, Reason.Unarchived}),
    },
    ConditionType.Ready: {
        ConditionStatus.TRUE: frozenset({Reason.Ready}),
        ConditionStatus.FALSE: FAILURE_REASONS,
        ConditionStatus.UNKNOWN: frozenset({Reason.Pending, Reason.Verifying}),
    },
    ConditionType.Reconciling: {
        ConditionStatus.TRUE: frozenset({Reason.Verifying, Reason.Retrying}),
    },
    ConditionType.Stalled: {
        ConditionStatus.TRUE: frozenset(
            {
                Reason.InvalidSpec,
                Reason.SecretNotFound,
                Reason.SecretKeyMissing,
                Reason.SecretKeyInvalid,
                Reason.ProviderUnavailable,
                Reason.IdentityNotAllowed,
                Reason.AuthenticationFailed,  # only when the credentials have expired
            }
        ),
    },
    ConditionType.CredentialsExpiring: {
        ConditionStatus.TRUE: frozenset({Reason.CredentialsExpireSoon, Reason.CredentialsExpired}),
        ConditionStatus.FALSE: frozenset({Reason.CredentialsExpireLater}),
    },
}
"""Which reasons each condition type may carry with each status (the table above)."""


def allowed_reasons(kind: ConditionType | str, status: ConditionStatus | str) -> frozenset[Reason]:
    """The reasons `REASONS` allows for this type and status (empty when none)."""
    try:
        return REASONS[ConditionType(kind)].get(ConditionStatus(status), frozenset())
    except ValueError:
        return frozenset()


class EventReason(StrEnum):
    """Reasons of the Events the operator posts on a Destination."""

    Verified = "Verified"
    """Normal: a probe succeeded after the Destination was not verified."""
    VerificationFailed = "VerificationFailed"
    """Warning: a probe failed; the message carries the Verified reason."""
    Archived = "Archived"
    """Normal: spec.archived became true."""
    Unarchived = "Unarchived"
    """Normal: spec.archived became false again."""
    CredentialsExpiring = "CredentialsExpiring"
    """Warning: the CredentialsExpiring condition became True; the message names the source
    and the date, never the value."""


class StepOutcome(StrEnum):
    """How one step of a probe ended."""

    Succeeded = "Succeeded"
    Failed = "Failed"
    Skipped = "Skipped"


def rfc3339(moment: datetime.datetime) -> str:
    """`moment` in UTC as `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, the metav1.Time format); a
    naive `moment` is taken as UTC. Every time the operator writes is written by this."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_timestamp(value: str) -> str:
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("must be an RFC 3339 date-time such as 2024-05-01T12:00:00Z") from None
    if "T" not in value.upper() or moment.tzinfo is None:
        raise ValueError(
            "must be an RFC 3339 date-time with a time zone, such as 2024-05-01T12:00:00Z"
        )
    return value


Timestamp = Annotated[
    str,
    Field(json_schema_extra={"format": "date-time"}),
    AfterValidator(_check_timestamp),
]

_STATUS_CONFIG = ConfigDict(extra="ignore")


class Condition(RuleModel):
    """One aspect of the Destination's state (the metav1.Condition shape)."""

    model_config = _STATUS_CONFIG

    type: str = Field(
        min_length=1,
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        description="Ready, Verified, Archived, Reconciling, Stalled or CredentialsExpiring.",
    )
    status: ConditionStatus = Field(strict=False, description="True, False or Unknown.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="Why the condition has this status, as a CamelCase word (such as Timeout).",
    )
    message: str = Field(
        default="",
        max_length=32768,
        description="Details for people; never contains a credential.",
    )
    last_transition_time: Timestamp = Field(
        description="When status last changed (not reason or message)."
    )
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="The metadata.generation this condition was computed from.",
    )


class ProbeStep(RuleModel):
    """One step of the last probe."""

    model_config = _STATUS_CONFIG

    name: str = Field(max_length=63, description="The step, such as Write or Delete.")
    outcome: StepOutcome = Field(strict=False, description="Succeeded, Failed or Skipped.")
    duration_milliseconds: int = Field(default=0, ge=0, description="How long the step took.")
    message: str = Field(
        default="", max_length=4096, description="What happened; never contains a credential."
    )


class LastProbe(RuleModel):
    """What the last probe did."""

    model_config = _STATUS_CONFIG

    time: Timestamp = Field(description="When the probe started.")
    duration_milliseconds: int = Field(default=0, ge=0, description="How long the probe took.")
    object_key: str = Field(
        default="", max_length=1024, description="Key (or path) of the probe object."
    )
    mode: VerificationMode = Field(
        default=VerificationMode.WriteDelete,
        strict=False,
        description="The verification mode used: WriteDelete or Write.",
    )
    steps: list[ProbeStep] = Field(
        default_factory=list, max_length=16, description="Each step in order, with its outcome."
    )


class DestinationStatus(RuleModel):
    """What the operator observed. Written by the operator only; every field is optional."""

    model_config = _STATUS_CONFIG

    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation the status describes."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        max_length=8,
        description=(
            "Ready, Verified, Archived, Reconciling, Stalled and CredentialsExpiring, one entry "
            "per type."
        ),
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    target: str | None = Field(
        default=None,
        max_length=2048,
        description="Where data goes (s3://bucket, gs://bucket, a URL, ...), for kubectl get.",
    )
    last_verified_time: Timestamp | None = Field(
        default=None, description="When a probe last succeeded."
    )
    next_verification_time: Timestamp | None = Field(
        default=None, description="When the next periodic probe is due."
    )
    last_probe: LastProbe | None = Field(default=None, description="What the last probe did.")
    credentials_fingerprint: str | None = Field(
        default=None,
        max_length=128,
        description=(
            "A one-way fingerprint of the Secret's data that the last probe used (never the "
            "data), so that a rotation is noticed."
        ),
    )
    credentials_expiry: Timestamp | None = Field(
        default=None,
        description=(
            "When the credentials the last probe read expire, where their text says so (a SAS "
            "token's se, a JWT bearer token's exp, the earliest notAfter in caBundle); the "
            "earliest of them. Unset when none can be read."
        ),
    )
    last_handled_verify_request: str | None = Field(
        default=None,
        max_length=256,
        description=(
            "The last value of the annotation destinations.io/verify-requested-at that was "
            "acted on; setting the annotation to a new value asks for a verification now."
        ),
    )
    archived_time: Timestamp | None = Field(
        default=None, description="When the Destination was archived (unset when not archived)."
    )

    def condition(self, kind: ConditionType | str) -> Condition | None:
        """The condition of this type, if present."""
        return next((c for c in self.conditions or [] if c.type == kind), None)

    @classmethod
    def parse(cls, raw: Any) -> DestinationStatus:
        """A stored status; anything unreadable becomes an empty status."""
        if not isinstance(raw, dict):
            return cls()
        try:
            return cls.model_validate(raw, strict=False)
        except ValidationError:
            return cls()


def fit_status(status: Mapping[str, Any]) -> dict[str, Any]:
    """`status` with every string cut to the `maxLength` the CRD gives its field.

    Much of a status comes from outside: an endpoint's answer in a message, an
    annotation's value. One string over its limit makes the API server refuse
    the whole patch (422), and then the status never changes again, so a string
    too long is cut (ending in "…") rather than sent. The limits are read from
    the models the CRD is generated from, so there is one owner of each.
    """
    return _fit(DestinationStatus, status)


def _fit(model: type[BaseModel], raw: Mapping[str, Any]) -> dict[str, Any]:
    fitted = dict(raw)
    for name, info in model.model_fields.items():
        key = info.alias or name
        value = fitted.get(key)
        inner = _model_in(info.annotation)
        if isinstance(value, str):
            fitted[key] = _cut(value, _max_length(info))
        elif inner is not None and isinstance(value, Mapping):
            fitted[key] = _fit(inner, value)
        elif inner is not None and isinstance(value, list):
            fitted[key] = [_fit(inner, v) if isinstance(v, Mapping) else v for v in value]
    return fitted


def fit_verify_request(value: str) -> str:
    """The verify-requested-at annotation's value as `lastHandledVerifyRequest` can hold it,
    so that a value longer than the field still compares equal once handled."""
    return _cut(value, _max_length(DestinationStatus.model_fields["last_handled_verify_request"]))


def _cut(value: str, limit: int | None) -> str:
    return value if limit is None or len(value) <= limit else value[: limit - 1] + "…"


def _max_length(info: FieldInfo) -> int | None:
    for rule in info.metadata:
        limit = getattr(rule, "max_length", None)
        if isinstance(limit, int):
            return limit
    return None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, alone, in a list or optional (`LastProbe | None`, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
