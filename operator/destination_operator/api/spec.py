"""`Destination.spec`: the top-level model, its admission rules, and the helpers the operator calls.

The member blocks, one per backend, are in `api.backends`; `spec.transport` is
in `api.transport`; the grammars of `pathPrefix` and of durations, with their
rules, in `api.prefix` and `api.duration`.

The CRD in crds/ is generated from these classes (`destination_operator.tools.crdgen`):
docstrings and field descriptions become what `kubectl explain` prints, and
every `Rule` becomes a CEL `x-kubernetes-validations` entry. Python attribute
names are snake_case; the Kubernetes JSON uses the camelCase aliases, which
`parse_spec` and `DestinationSpec.model_validate` accept.

    spec = parse_spec(body["spec"])        # raises SpecError(field, message)
    spec.member                            # the block that `type` selects
    spec.member.location()                 # where data goes (status.target)
    spec.verification.interval_seconds     # None: unset (the operator's default); 0.0 = never
    validate_update(old_spec, new_spec)    # the immutability rules
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, ClassVar, cast

from pydantic import Field, ValidationError
from pydantic_core import ErrorDetails

from .backends import Member
from .backends.azure import AzureBlobStorage
from .backends.gcs import GoogleCloudStorage
from .backends.oss import AlibabaOSS
from .backends.s3 import AmazonS3, OracleCloudStorage, S3Compatible
from .backends.webhook import Webhook
from .credentials import IDENTITY_TYPES, Credentials, OperatorIdentity, SecretRef, identity_rules
from .duration import DurationError, duration_rule, parse_duration
from .prefix import PREFIX_MAX_LENGTH, prefix_rules, render_prefix
from .rules import (
    RULE_ERROR,
    AnyRule,
    Checks,
    FieldReason,
    Rule,
    RuleModel,
    TransitionRule,
    immutable,
)
from .transport import Transport

__all__ = [
    "IDENTITY_TYPES",
    "MEMBER_FIELDS",
    "Credentials",
    "DestinationSpec",
    "DestinationType",
    "DurationError",
    "Environment",
    "OperatorIdentity",
    "SecretRef",
    "SpecError",
    "Verification",
    "VerificationMode",
    "parse_duration",
    "parse_spec",
    "render_prefix",
    "spec_problems",
    "validate_update",
]


# --- enums -------------------------------------------------------------------


class DestinationType(StrEnum):
    """Which storage service the Destination writes to; selects the one member block that must be
    set.
    """

    AmazonS3 = "AmazonS3"
    S3Compatible = "S3Compatible"
    GoogleCloudStorage = "GoogleCloudStorage"
    AzureBlobStorage = "AzureBlobStorage"
    AlibabaOSS = "AlibabaOSS"
    OracleCloudStorage = "OracleCloudStorage"
    Webhook = "Webhook"


class Environment(StrEnum):
    """Production and Staging require https:// for every URL in the spec; Development also allows
    http://.
    """

    Production = "Production"
    Staging = "Staging"
    Development = "Development"


class VerificationMode(StrEnum):
    """WriteDelete uploads a small probe object under the prefix and deletes it again; Write only
    uploads it (for write-only credentials).
    """

    WriteDelete = "WriteDelete"
    Write = "Write"


# --- verification ------------------------------------------------------------


class Verification(RuleModel):
    """How the operator proves that the credentials can write to the target."""

    interval: (
        Annotated[
            str,
            Field(
                max_length=64,
                description=(
                    "How often a verified Destination is verified again, as a Go duration of "
                    "at least 1m (such as 1h, 30m or 1h30m), or 0s: only when something "
                    "changes. When unset, the operator's default applies (1h unless the "
                    "operator is started with another). Failed verifications are retried with "
                    "exponential backoff regardless."
                ),
            ),
            Checks(
                duration_rule(
                    "spec.verification.interval",
                    zero_or_at_least="1m",
                    allowed=(
                        "must be 0s (never periodically) or a Go duration of at least 1m, such "
                        "as 1h, 30m or 1h30m: numbers with units h, m, s, ms, us or ns, no sign"
                    ),
                )
            ),
        ]
        | None
    ) = None
    timeout: (
        Annotated[
            str,
            Field(
                max_length=64,
                description=(
                    "Bound on one verification, as a Go duration (such as 30s); more than 0s, "
                    "at most 10m. When unset, the operator's default applies (30s unless the "
                    "operator is started with another)."
                ),
            ),
            Checks(
                duration_rule(
                    "spec.verification.timeout",
                    above_zero=True,
                    maximum="10m",
                    allowed=(
                        "must be a Go duration greater than 0s and at most 10m, such as 30s or 2m"
                    ),
                )
            ),
        ]
        | None
    ) = None
    mode: VerificationMode = Field(
        default=VerificationMode.WriteDelete,
        strict=False,
        description=(
            "WriteDelete (default): upload a small, clearly named probe object under "
            "spec.pathPrefix, then delete it. Write: upload only (for write-only credentials)."
        ),
    )

    @property
    def interval_seconds(self) -> float | None:
        """`interval` in seconds: 0.0 means never periodically, None that it is unset (the
        operator's default interval applies)."""
        return None if self.interval is None else parse_duration(self.interval)

    @property
    def timeout_seconds(self) -> float | None:
        """`timeout` in seconds; None when it is unset (the operator's default timeout
        applies)."""
        return None if self.timeout is None else parse_duration(self.timeout)


# --- the spec and the rules across its blocks --------------------------------


MEMBER_FIELDS: dict[DestinationType, tuple[str, str]] = {
    DestinationType.AmazonS3: ("amazon_s3", "amazonS3"),
    DestinationType.S3Compatible: ("s3_compatible", "s3Compatible"),
    DestinationType.GoogleCloudStorage: ("google_cloud_storage", "googleCloudStorage"),
    DestinationType.AzureBlobStorage: ("azure_blob_storage", "azureBlobStorage"),
    DestinationType.AlibabaOSS: ("alibaba_oss", "alibabaOSS"),
    DestinationType.OracleCloudStorage: ("oracle_cloud_storage", "oracleCloudStorage"),
    DestinationType.Webhook: ("webhook", "webhook"),
}
"""type -> (attribute, JSON field) of its member block."""


def _union_rules() -> tuple[Rule, ...]:
    rules: list[Rule] = []
    for kind, (attr, alias) in MEMBER_FIELDS.items():

        def required(spec: DestinationSpec, kind: str = kind, attr: str = attr) -> bool:
            return spec.type != kind or getattr(spec, attr) is not None

        def forbidden(spec: DestinationSpec, kind: str = kind, attr: str = attr) -> bool:
            return spec.type == kind or getattr(spec, attr) is None

        rules.append(
            Rule(
                cel=f"self.type != '{kind}' || has(self.{alias})",
                message=f"spec.{alias} is required when spec.type is {kind}",
                check=required,
                field_path=f".{alias}",
                reason=FieldReason.FieldValueRequired,
            )
        )
        rules.append(
            Rule(
                cel=f"self.type == '{kind}' || !has(self.{alias})",
                message=(
                    f"spec.{alias} must not be set unless spec.type is {kind}: "
                    "set only the block that spec.type names"
                ),
                check=forbidden,
                field_path=f".{alias}",
                reason=FieldReason.FieldValueForbidden,
            )
        )
    return tuple(rules)


_URL_FIELDS = (
    ("s3_compatible", "s3Compatible", "endpoint"),
    ("azure_blob_storage", "azureBlobStorage", "endpoint"),
    ("alibaba_oss", "alibabaOSS", "endpoint"),
    ("webhook", "webhook", "url"),
)


def _https_rules() -> tuple[Rule, ...]:
    rules: list[Rule] = []
    for attr, alias, leaf in _URL_FIELDS:

        def check(spec: DestinationSpec, attr: str = attr, leaf: str = leaf) -> bool:
            if spec.environment == Environment.Development:
                return True
            member = getattr(spec, attr)
            if member is None:
                return True
            value = getattr(member, leaf)
            return value is None or str(value).startswith("https://")

        rules.append(
            Rule(
                cel=(
                    "(has(self.environment) && self.environment == 'Development') || "
                    f"!has(self.{alias}) || !has(self.{alias}.{leaf}) || "
                    f"self.{alias}.{leaf}.startsWith('https://')"
                ),
                message=(
                    f"spec.{alias}.{leaf} must start with https:// when spec.environment is "
                    "Production or Staging (http:// is allowed only in Development)"
                ),
                check=check,
                field_path=f".{alias}.{leaf}",
            )
        )
    return tuple(rules)


def _transport_rules() -> tuple[Rule, ...]:
    def check(spec: DestinationSpec) -> bool:
        transport = spec.transport
        return (
            transport is None
            or not transport.insecure_skip_tls_verify
            or spec.environment == Environment.Development
        )

    return (
        Rule(
            cel=(
                "!has(self.transport) || !has(self.transport.insecureSkipTLSVerify) || "
                "!self.transport.insecureSkipTLSVerify || "
                "(has(self.environment) && self.environment == 'Development')"
            ),
            message=(
                "spec.transport.insecureSkipTLSVerify may be true only when spec.environment is "
                "Development (Production and Staging always verify certificates: put the CA "
                "that signed the target's certificate in the Secret's caBundle key instead)"
            ),
            check=check,
            field_path=".transport.insecureSkipTLSVerify",
        ),
    )


class DestinationSpec(RuleModel):
    """Where a Destination writes, with which credentials, and how it is verified. A discriminated
    union: spec.type names the one member block (amazonS3, s3Compatible, googleCloudStorage,
    azureBlobStorage, alibabaOSS, oracleCloudStorage or webhook) that must be set; no other may be.
    spec.type and the block's location fields are immutable.
    """

    type: Annotated[
        DestinationType,
        Field(
            strict=False,
            description=(
                "The storage service: AmazonS3, S3Compatible, GoogleCloudStorage, "
                "AzureBlobStorage, AlibabaOSS, OracleCloudStorage or Webhook. Exactly the "
                "member block it names must be set. Immutable."
            ),
        ),
        Checks(immutable("spec.type", "the kind of storage")),
    ]
    amazon_s3: AmazonS3 | None = Field(
        default=None, description="Required when type is AmazonS3; forbidden otherwise."
    )
    s3_compatible: S3Compatible | None = Field(
        default=None,
        description="Required when type is S3Compatible; forbidden otherwise.",
    )
    google_cloud_storage: GoogleCloudStorage | None = Field(
        default=None,
        description="Required when type is GoogleCloudStorage; forbidden otherwise.",
    )
    azure_blob_storage: AzureBlobStorage | None = Field(
        default=None,
        description="Required when type is AzureBlobStorage; forbidden otherwise.",
    )
    alibaba_oss: AlibabaOSS | None = Field(
        default=None,
        alias="alibabaOSS",
        description="Required when type is AlibabaOSS; forbidden otherwise.",
    )
    oracle_cloud_storage: OracleCloudStorage | None = Field(
        default=None,
        description="Required when type is OracleCloudStorage; forbidden otherwise.",
    )
    webhook: Webhook | None = Field(
        default=None, description="Required when type is Webhook; forbidden otherwise."
    )
    display_name: (
        Annotated[
            str,
            Field(min_length=3, max_length=63, description="Human-readable name, 3-63 characters."),
        ]
        | None
    ) = None
    enabled: bool = Field(
        default=True,
        description=(
            "false: the Destination is not verified and not Ready (nothing should be delivered "
            "to it). Setting it back to true verifies it again."
        ),
    )
    archived: bool = Field(
        default=False,
        description=(
            "true: the Destination is archived: not verified, not Ready, its status history "
            "kept (the Archived condition records when). false again unarchives and verifies."
        ),
    )
    environment: Environment = Field(
        default=Environment.Production,
        strict=False,
        description=(
            "Production (default), Staging or Development. Production and Staging require "
            "https:// for every URL in the spec; Development also allows http://."
        ),
    )
    path_prefix: (
        Annotated[
            str,
            Field(
                max_length=PREFIX_MAX_LENGTH,
                description=(
                    "Prefix of every object key written, such as exports/%DATE%/. '/' makes "
                    "sub-directories. Letters, digits, '.', '_', '-', '=', '/' and the tokens "
                    "%COLLECTION_ID%, %COLLECTION_NAME%, %RESULT_SET_ID% and %DATE% (UTC date as "
                    "YYYY_MM_DD); no leading '/', no '..', no '//'. The verification probe object "
                    "is written under it."
                ),
            ),
            Checks(*prefix_rules()),
        ]
        | None
    ) = None
    credentials: Credentials = Field(
        description=(
            "A Secret (which keys it needs depends on spec.type), a ServiceAccount of this "
            "namespace, or the operator's own identity."
        )
    )
    verification: Verification = Field(
        default_factory=Verification,
        description="Unset: every field below takes its default.",
        json_schema_extra={"default": {}},
    )
    transport: Transport | None = Field(
        default=None,
        description=(
            "Unset: the probe connects directly and verifies certificates against the system's "
            "CAs (or the Secret's caBundle)."
        ),
    )

    cel_rules: ClassVar[tuple[AnyRule, ...]] = (
        _union_rules() + _https_rules() + _transport_rules() + identity_rules()
    )

    @property
    def member(self) -> Member:
        """The member block that `type` selects (validation guarantees it is set)."""
        block = getattr(self, MEMBER_FIELDS[self.type][0])
        if block is None:  # only for a spec built without validation
            raise SpecError(f"spec.{MEMBER_FIELDS[self.type][1]}", "Required value")
        return cast(Member, block)

    @property
    def secret_name(self) -> str | None:
        """The Secret the credentials name; None for a workload identity."""
        ref = self.credentials.secret_ref
        return None if ref is None else ref.name


# --- errors and entry points -------------------------------------------------


class SpecError(Exception):
    """A spec the rules refuse: `field` is a dotted path (`spec.s3Compatible.bucket`).

    `message` is human-readable and never contains the offending value.
    """

    reason: ClassVar[str] = "InvalidSpec"
    """The Verified=False reason (`status.Reason.InvalidSpec`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


_TYPE_NAMES = {
    "string_type": "string",
    "bool_type": "boolean",
    "int_type": "integer",
    "float_type": "number",
    "model_type": "object",
    "model_attributes_type": "object",
    "dict_type": "object",
    "list_type": "array",
}


def _path(loc: tuple[int | str, ...], root: str = "spec") -> str:
    out = root
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _supported(expected: str) -> str:
    # pydantic says "'A', 'B' or 'C'"; the API server says "A", "B", "C"
    return expected.replace("'", '"').replace('" or "', '", "')


def _problems(err: ErrorDetails, root: str) -> list[SpecError]:
    """SpecErrors for one pydantic error (a rule error may stand for several rules)."""
    if err["type"] == RULE_ERROR:
        path = _path(tuple(err["loc"]), root)
        ctx = err.get("ctx") or {}
        return [SpecError(path + str(where), str(message)) for where, message in ctx["failures"]]
    return [_problem(err, root)]


def _problem(err: ErrorDetails, root: str) -> SpecError:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    path = _path(tuple(err["loc"]), root)
    if kind == "missing":
        return SpecError(path, "Required value")
    if kind == "extra_forbidden":
        return SpecError(path, f'unknown field "{path}"')
    if kind in ("enum", "literal_error"):
        return SpecError(
            path, f"Unsupported value: supported values: {_supported(ctx['expected'])}"
        )
    if kind == "string_too_short":
        n = ctx["min_length"]
        return SpecError(path, f"{path} should be at least {n} chars long")
    if kind == "string_too_long":
        n = ctx["max_length"]
        return SpecError(path, f"Too long: may not be more than {n} characters")
    if kind in _TYPE_NAMES:
        return SpecError(path, f"{path} must be of type {_TYPE_NAMES[kind]}")
    return SpecError(path, f"{path} is invalid: {err['msg']}")


def spec_problems(raw: Any, root: str = "spec") -> list[SpecError]:
    """Every problem the models find in a raw spec (empty when it is valid).

    Field-level problems are all reported; the whole-spec rules (the union and
    the https rule) run only once every field is valid.
    """
    if raw is None:
        return [SpecError(root, "Required value")]
    if not isinstance(raw, Mapping):
        return [SpecError(root, f"{root} must be of type object")]
    try:
        DestinationSpec.model_validate(dict(raw), by_alias=True, by_name=False)
    except ValidationError as err:
        details = err.errors(include_url=False, include_input=False)
        return [problem for e in details for problem in _problems(e, root)]
    return []


def parse_spec(raw: Mapping[str, Any] | None) -> DestinationSpec:
    """The validated spec; raises `SpecError` with the first problem."""
    if raw is None or not isinstance(raw, Mapping):
        raise spec_problems(raw)[0]
    try:
        return DestinationSpec.model_validate(dict(raw), by_alias=True, by_name=False)
    except ValidationError as err:
        first = err.errors(include_url=False, include_input=False)[0]
        raise _problems(first, "spec")[0] from None


def _walk_update(old: RuleModel, new: RuleModel, path: str) -> None:
    cls = type(new)
    for name, rule in cls.field_transition_rules():
        before, after = getattr(old, name), getattr(new, name)
        if before is not None and after is not None and not rule.check(after, before):
            raise SpecError(f"{path}.{cls.model_fields[name].alias}", rule.message)
    for model_rule in cls.cel_rules:
        if isinstance(model_rule, TransitionRule) and not model_rule.check(new, old):
            raise SpecError(path + model_rule.field_path, model_rule.message)
    for name, info in cls.model_fields.items():
        before, after = getattr(old, name), getattr(new, name)
        if isinstance(after, RuleModel) and type(before) is type(after):
            _walk_update(before, after, f"{path}.{info.alias}")


def validate_update(old: DestinationSpec, new: DestinationSpec) -> None:
    """The CRD's transition rules: raises `SpecError` when an immutable field changed."""
    _walk_update(old, new, "spec")
