"""`Destination.spec`: the models, their admission rules, and the helpers the operator calls.

The CRD in crds/ is generated from these classes (`destination_operator.tools.crdgen`):
docstrings and field descriptions become what `kubectl explain` prints, and
every `Rule` becomes a CEL `x-kubernetes-validations` entry. Python attribute
names are snake_case; the Kubernetes JSON uses the camelCase aliases, which
`parse_spec` and `DestinationSpec.model_validate` accept.

    spec = parse_spec(body["spec"])        # raises SpecError(field, message)
    spec.member                            # the block that `type` selects
    spec.verification.interval_seconds     # None: unset (the operator's default); 0.0 = never
    validate_update(old_spec, new_spec)    # the immutability rules
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, ClassVar, cast

from pydantic import Field, ValidationError
from pydantic_core import ErrorDetails

from .duration import DURATION_PATTERN, DurationError, parse_duration, parse_go_duration
from .prefix import PREFIX_MAX_LENGTH, PREFIX_PATTERN, render_prefix
from .rules import (
    RULE_ERROR,
    AnyRule,
    Checks,
    FieldReason,
    Rule,
    RuleModel,
    TransitionRule,
    matches,
)

__all__ = [
    "MEMBER_FIELDS",
    "AlibabaOSS",
    "AmazonS3",
    "AzureBlobStorage",
    "AzureProduct",
    "Credentials",
    "DestinationSpec",
    "DestinationType",
    "DurationError",
    "Environment",
    "GoogleCloudStorage",
    "Member",
    "OSSRegion",
    "OracleCloudStorage",
    "S3Compatible",
    "SecretRef",
    "ServerSideEncryption",
    "SpecError",
    "Transport",
    "Verification",
    "VerificationMode",
    "Webhook",
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


class ServerSideEncryption(StrEnum):
    """The x-amz-server-side-encryption header sent with every object."""

    AES256 = "AES256"
    AwsKms = "aws:kms"
    AwsKmsDsse = "aws:kms:dsse"


class AzureProduct(StrEnum):
    """The product that reads the container."""

    Databricks = "Databricks"


class OSSRegion(StrEnum):
    """The 23 Alibaba Cloud OSS region ids."""

    CN_HANGZHOU = "oss-cn-hangzhou"
    CN_SHANGHAI = "oss-cn-shanghai"
    CN_QINGDAO = "oss-cn-qingdao"
    CN_BEIJING = "oss-cn-beijing"
    CN_ZHANGJIAKOU = "oss-cn-zhangjiakou"
    CN_HUHEHAOTE = "oss-cn-huhehaote"
    CN_WULANCHABU = "oss-cn-wulanchabu"
    CN_SHENZHEN = "oss-cn-shenzhen"
    CN_HEYUAN = "oss-cn-heyuan"
    CN_GUANGZHOU = "oss-cn-guangzhou"
    CN_CHENGDU = "oss-cn-chengdu"
    CN_HONGKONG = "oss-cn-hongkong"
    US_WEST_1 = "oss-us-west-1"
    US_EAST_1 = "oss-us-east-1"
    AP_SOUTHEAST_1 = "oss-ap-southeast-1"
    AP_SOUTHEAST_2 = "oss-ap-southeast-2"
    AP_SOUTHEAST_3 = "oss-ap-southeast-3"
    AP_SOUTHEAST_5 = "oss-ap-southeast-5"
    AP_NORTHEAST_1 = "oss-ap-northeast-1"
    AP_SOUTH_1 = "oss-ap-south-1"
    EU_CENTRAL_1 = "oss-eu-central-1"
    EU_WEST_1 = "oss-eu-west-1"
    ME_EAST_1 = "oss-me-east-1"


"""Every Secret key any type reads."""


# --- rule builders -----------------------------------------------------------


def _quoted(pattern: str) -> str:
    if "'" in pattern:
        raise ValueError(f"pattern {pattern!r} cannot be a CEL single-quoted string")
    return f"'{pattern}'"


def pattern_rule(path: str, pattern: str, allowed: str) -> Rule:
    """`self.matches(pattern)` on a string; the message is `<path> <allowed>`."""

    def check(value: str) -> bool:
        return matches(value, pattern)

    return Rule(cel=f"self.matches({_quoted(pattern)})", message=f"{path} {allowed}", check=check)


def immutable(path: str, what: str = "where the Destination writes") -> TransitionRule:
    """`self == oldSelf` on a required field."""

    def check(new: Any, old: Any) -> bool:
        return bool(new == old)

    return TransitionRule(
        cel="self == oldSelf",
        message=(
            f"{path} is immutable: it fixes {what}; "
            "create a new Destination to write somewhere else"
        ),
        check=check,
    )


def immutable_optional(path: str, attr: str, alias: str) -> TransitionRule:
    """An optional field of a member block may be neither added, removed nor changed."""

    def check(new: Any, old: Any) -> bool:
        return bool(getattr(new, attr) == getattr(old, attr))

    return TransitionRule(
        cel=(
            f"has(self.{alias}) == has(oldSelf.{alias}) && "
            f"(!has(self.{alias}) || self.{alias} == oldSelf.{alias})"
        ),
        message=(
            f"{path} is immutable (it may be neither added, removed nor changed): it fixes "
            "where the Destination writes; create a new Destination to write somewhere else"
        ),
        check=check,
        field_path=f".{alias}",
    )


_IPV4_LIKE = "^[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+$"


def _not_ip(path: str) -> Rule:
    def check(value: str) -> bool:
        return not matches(value, _IPV4_LIKE)

    return Rule(
        cel=f"!self.matches({_quoted(_IPV4_LIKE)})",
        message=f"{path} must not be formatted as an IP address (such as 192.168.5.4)",
        check=check,
    )


def _no_double_dot(path: str, what: str = "two adjacent periods ('..')") -> Rule:
    def check(value: str) -> bool:
        return ".." not in value

    return Rule(cel="!self.contains('..')", message=f"{path} must not contain {what}", check=check)


def s3_bucket_rules(path: str, *, amazon: bool) -> tuple[Rule, ...]:
    """Amazon S3's general purpose bucket naming rules (the reserved affixes only for Amazon)."""
    rules = [
        pattern_rule(
            path,
            "^[a-z0-9][-a-z0-9.]*[a-z0-9]$",
            "must use only lowercase letters, digits, '.' and '-', "
            "and start and end with a letter or digit",
        ),
        _no_double_dot(path),
        _not_ip(path),
    ]
    if amazon:
        prefixes = ("xn--", "sthree-", "amzn-s3-demo-")
        suffixes = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")

        def check(value: str) -> bool:
            return not value.startswith(prefixes) and not value.endswith(suffixes)

        cel = " || ".join(
            [f"self.startsWith('{p}')" for p in prefixes]
            + [f"self.endsWith('{s}')" for s in suffixes]
        )
        rules.append(
            Rule(
                cel=f"!({cel})",
                message=(
                    f"{path} must not start with 'xn--', 'sthree-' or 'amzn-s3-demo-', nor end "
                    "with '-s3alias', '--ol-s3', '.mrap', '--x-s3' or '--table-s3' "
                    "(reserved by Amazon S3)"
                ),
                check=check,
            )
        )
    return tuple(rules)


def gcs_bucket_rules(path: str) -> tuple[Rule, ...]:
    """Cloud Storage's bucket naming rules."""

    def short_or_dotted(value: str) -> bool:
        return len(value) <= 63 or "." in value

    def parts_short(value: str) -> bool:
        return not matches(value, "[^.]{64}")

    def not_google(value: str) -> bool:
        return not value.startswith("goog") and "google" not in value and "g00gle" not in value

    return (
        pattern_rule(
            path,
            "^[a-z0-9][-a-z0-9_.]*[a-z0-9]$",
            "must use only lowercase letters, digits, '-', '_' and '.', "
            "and start and end with a letter or digit",
        ),
        Rule(
            cel="self.size() <= 63 || self.contains('.')",
            message=f"{path} must be at most 63 characters (at most 222 if it contains dots)",
            check=short_or_dotted,
        ),
        Rule(
            cel="!self.matches('[^.]{64}')",
            message=f"{path} must not have a dot-separated part longer than 63 characters",
            check=parts_short,
        ),
        _not_ip(path),
        Rule(
            cel="!self.startsWith('goog') && !self.contains('google') && !self.contains('g00gle')",
            message=f"{path} must not start with 'goog' nor contain 'google' or 'g00gle'",
            check=not_google,
        ),
    )


_REGION_PATTERN = "^[a-z]{2,}(-[a-z]+)+-[0-9]+$"
_DNS_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = f"^{_DNS_LABEL}([.]{_DNS_LABEL})*$"
_HOST = "[A-Za-z0-9]([-.A-Za-z0-9]*[A-Za-z0-9])?(:[0-9]{1,5})?"
ENDPOINT_PATTERN = f"^https?://{_HOST}(/[-A-Za-z0-9._~%/]*)?$"
URL_PATTERN = f"^https?://{_HOST}([/?][!-~]*)?$"

_ENDPOINT_ALLOWED = (
    "must be an http:// or https:// URL: a host name or IPv4 address, an optional :port and "
    "an optional path (letters, digits, '-', '.', '_', '~', '%', '/'); no user:password@, "
    "query or fragment"
)
_URL_ALLOWED = (
    "must be an http:// or https:// URL: a host name or IPv4 address, an optional :port, then "
    "an optional path or query of printable ASCII without spaces; no user:password@"
)


def endpoint_rules(path: str) -> tuple[Rule, ...]:
    return (pattern_rule(path, ENDPOINT_PATTERN, _ENDPOINT_ALLOWED),)


def region_rule(path: str, example: str) -> Rule:
    return pattern_rule(
        path,
        _REGION_PATTERN,
        f"must be a region id: lowercase words joined by '-' ending in a number, such as {example}",
    )


def _duration_rule(
    path: str,
    *,
    allowed: str,
    above_zero: bool = False,
    zero_or_at_least: str | None = None,
    maximum: str | None = None,
) -> Rule:
    """A Go duration: CEL checks the grammar first, so garbage gets this message, not a
    `duration()` evaluation error; then the bounds.

    `above_zero`: more than 0s. `zero_or_at_least`: exactly zero (any spelling Go parses
    to zero, such as `0`, `0s` or `0h0m`) or at least this duration. `maximum`: at most
    this duration. Without a bound, any non-negative duration passes.
    """
    if above_zero and zero_or_at_least is not None:
        raise ValueError("above_zero and zero_or_at_least exclude each other")
    cel = f"self.matches({_quoted(DURATION_PATTERN)})"
    low = None
    if zero_or_at_least is not None:
        low = parse_go_duration(zero_or_at_least)
        if low <= 0:
            raise ValueError(f"zero_or_at_least must be above 0s, not {zero_or_at_least!r}")
        cel += (
            " && (duration(self) == duration('0s')"
            f" || duration(self) >= duration('{zero_or_at_least}'))"
        )
    else:
        comparison = ">" if above_zero else ">="
        cel += f" && duration(self) {comparison} duration('0s')"
    high = None
    if maximum is not None:
        high = parse_go_duration(maximum)
        cel += f" && duration(self) <= duration('{maximum}')"

    def check(value: str) -> bool:
        if not matches(value, DURATION_PATTERN):
            return False
        try:
            nanos = parse_go_duration(value)
        except DurationError:
            return False
        if nanos < 0 or (above_zero and nanos == 0):
            return False
        if low is not None and 0 < nanos < low:
            return False
        return high is None or nanos <= high

    return Rule(cel=cel, message=f"{path} {allowed}", check=check)


# --- member blocks -----------------------------------------------------------


class AmazonS3(RuleModel):
    """An Amazon S3 bucket. The Secret (spec.credentials.secretRef.name) must hold the keys
    accessKeyId
    and secretAccessKey, and sessionToken for temporary credentials.
    """

    bucket: Annotated[
        str,
        Field(
            min_length=3,
            max_length=63,
            description=(
                "Name of an existing general purpose bucket: 3-63 lowercase letters, digits, "
                "'.' and '-', starting and ending with a letter or digit, no '..', not "
                "formatted as an IP address, no prefix xn--, sthree- or amzn-s3-demo- and no "
                "suffix -s3alias, --ol-s3, .mrap, --x-s3 or --table-s3. Immutable."
            ),
        ),
        Checks(
            *s3_bucket_rules("spec.amazonS3.bucket", amazon=True), immutable("spec.amazonS3.bucket")
        ),
    ]
    region: Annotated[
        str,
        Field(
            max_length=32,
            description=(
                "AWS region of the bucket, such as us-east-1 or eu-central-1. It selects the "
                "endpoint and the partition (aws, aws-cn, aws-us-gov). Immutable."
            ),
        ),
        Checks(region_rule("spec.amazonS3.region", "us-east-1"), immutable("spec.amazonS3.region")),
    ]
    server_side_encryption: ServerSideEncryption | None = Field(
        default=None,
        strict=False,
        description=(
            "Ask S3 to encrypt every object written with this server-side encryption "
            "(x-amz-server-side-encryption header): AES256 (SSE-S3), aws:kms (SSE-KMS with the "
            "bucket's key) or aws:kms:dsse. Unset: the bucket's default encryption applies."
        ),
    )


class S3Compatible(RuleModel):
    """A bucket on any service that speaks the S3 API (MinIO, Ceph, Cloudflare R2, Wasabi, ...). The
    Secret (spec.credentials.secretRef.name) must hold the keys accessKeyId and secretAccessKey, and
    optionally sessionToken.
    """

    endpoint: Annotated[
        str,
        Field(
            max_length=512,
            description=(
                "URL of the S3 API, such as https://minio.example.com:9000. https:// is "
                "required unless spec.environment is Development. No user:password@, query or "
                "fragment. Immutable."
            ),
        ),
        Checks(
            *endpoint_rules("spec.s3Compatible.endpoint"), immutable("spec.s3Compatible.endpoint")
        ),
    ]
    bucket: Annotated[
        str,
        Field(
            min_length=3,
            max_length=63,
            description=(
                "Name of an existing bucket: 3-63 lowercase letters, digits, '.' and '-', "
                "starting and ending with a letter or digit, no '..', not formatted as an IP "
                "address. Immutable."
            ),
        ),
        Checks(
            *s3_bucket_rules("spec.s3Compatible.bucket", amazon=False),
            immutable("spec.s3Compatible.bucket"),
        ),
    ]
    region: (
        Annotated[
            str,
            Field(
                max_length=64,
                description=(
                    "Signing region, if the service wants one (such as auto for Cloudflare R2, or "
                    "us-east-1); unset means us-east-1. Letters, digits, '.', '_' and '-'. "
                    "Immutable."
                ),
            ),
            Checks(
                pattern_rule(
                    "spec.s3Compatible.region",
                    "^[A-Za-z0-9][-A-Za-z0-9_.]*$",
                    "must use only letters, digits, '.', '_' and '-', "
                    "and start with a letter or digit",
                )
            ),
        ]
        | None
    ) = None
    force_path_style: bool = Field(
        default=False,
        description=(
            "Address the bucket as <endpoint>/<bucket> instead of <bucket>.<endpoint host> "
            "(MinIO and most self-hosted services need true). IP-address endpoints always use "
            "path style."
        ),
    )

    cel_rules: ClassVar[tuple[AnyRule, ...]] = (
        immutable_optional("spec.s3Compatible.region", "region", "region"),
    )


class GoogleCloudStorage(RuleModel):
    """A Google Cloud Storage bucket. The Secret (spec.credentials.secretRef.name) must hold either
    serviceAccountJson (a service account key file in JSON), or hmacAccessKey and hmacSecret
    (interoperability HMAC keys).
    """

    bucket: Annotated[
        str,
        Field(
            min_length=3,
            max_length=222,
            description=(
                "Name of an existing bucket: 3-63 lowercase letters, digits, '-', '_' and '.' "
                "(up to 222 with dots, each dot-separated part at most 63), starting and ending "
                "with a letter or digit, not formatted as an IP address, not starting with "
                "goog and not containing google. Immutable."
            ),
        ),
        Checks(
            *gcs_bucket_rules("spec.googleCloudStorage.bucket"),
            immutable("spec.googleCloudStorage.bucket"),
        ),
    ]


class AzureBlobStorage(RuleModel):
    """A container in an Azure Storage account (Blob Storage or Data Lake Storage Gen2). The Secret
    (spec.credentials.secretRef.name) must hold one of accountKey, sasToken or connectionString.
    """

    storage_account_name: Annotated[
        str,
        Field(
            min_length=3,
            max_length=24,
            description="Storage account name: 3-24 lowercase letters and digits. Immutable.",
        ),
        Checks(
            pattern_rule(
                "spec.azureBlobStorage.storageAccountName",
                "^[a-z0-9]+$",
                "must use only lowercase letters and digits",
            ),
            immutable("spec.azureBlobStorage.storageAccountName"),
        ),
    ]
    container_name: Annotated[
        str,
        Field(
            min_length=3,
            max_length=63,
            description=(
                "Name of an existing container: 3-63 lowercase letters, digits and hyphens, "
                "starting and ending with a letter or digit, no two hyphens in a row. Immutable."
            ),
        ),
        Checks(
            pattern_rule(
                "spec.azureBlobStorage.containerName",
                "^[a-z0-9]+(-[a-z0-9]+)*$",
                "must use only lowercase letters, digits and single hyphens, "
                "and start and end with a letter or digit",
            ),
            immutable("spec.azureBlobStorage.containerName"),
        ),
    ]
    endpoint: (
        Annotated[
            str,
            Field(
                max_length=512,
                description=(
                    "Blob service URL, for sovereign clouds and emulators (such as "
                    "https://<account>.blob.core.chinacloudapi.cn, or "
                    "http://127.0.0.1:10000/<account> "
                    "for Azurite in Development). Unset: https://<account>.blob.core.windows.net. "
                    "Immutable."
                ),
            ),
            Checks(*endpoint_rules("spec.azureBlobStorage.endpoint")),
        ]
        | None
    ) = None
    product: AzureProduct | None = Field(
        default=None,
        strict=False,
        description="Set to Databricks when a Databricks workspace reads the container.",
    )

    cel_rules: ClassVar[tuple[AnyRule, ...]] = (
        immutable_optional("spec.azureBlobStorage.endpoint", "endpoint", "endpoint"),
    )


class AlibabaOSS(RuleModel):
    """An Alibaba Cloud Object Storage Service (OSS) bucket. The Secret
    (spec.credentials.secretRef.name) must hold accessKeyId and accessKeySecret.
    """

    bucket: Annotated[
        str,
        Field(
            min_length=3,
            max_length=63,
            description=(
                "Name of an existing bucket: 3-63 lowercase letters, digits and '-', starting "
                "and ending with a letter or digit. Immutable."
            ),
        ),
        Checks(
            pattern_rule(
                "spec.alibabaOSS.bucket",
                "^[a-z0-9][-a-z0-9]*[a-z0-9]$",
                "must use only lowercase letters, digits and '-', "
                "and start and end with a letter or digit",
            ),
            immutable("spec.alibabaOSS.bucket"),
        ),
    ]
    region: Annotated[
        OSSRegion,
        Field(
            strict=False,
            description="OSS region id of the bucket, such as oss-cn-hangzhou. Immutable.",
        ),
        Checks(immutable("spec.alibabaOSS.region")),
    ]
    endpoint: (
        Annotated[
            str,
            Field(
                max_length=512,
                description=(
                    "Override of the OSS endpoint (such as an internal or accelerated endpoint); "
                    "unset: https://<region>.aliyuncs.com. Immutable."
                ),
            ),
            Checks(*endpoint_rules("spec.alibabaOSS.endpoint")),
        ]
        | None
    ) = None

    cel_rules: ClassVar[tuple[AnyRule, ...]] = (
        immutable_optional("spec.alibabaOSS.endpoint", "endpoint", "endpoint"),
    )


class OracleCloudStorage(RuleModel):
    """An Oracle Cloud Infrastructure Object Storage bucket, reached through OCI's Amazon S3
    Compatibility API (https://<namespace>.compat.objectstorage.<region>.oraclecloud.com). The
    Secret (spec.credentials.secretRef.name) must hold accessKeyId and secretAccessKey of a Customer
    Secret Key.
    """

    bucket: Annotated[
        str,
        Field(
            min_length=1,
            max_length=256,
            description=(
                "Name of an existing bucket: 1-256 letters, digits, '-', '_' and '.'. Immutable."
            ),
        ),
        Checks(
            pattern_rule(
                "spec.oracleCloudStorage.bucket",
                "^[-A-Za-z0-9_.]+$",
                "must use only letters, digits, '-', '_' and '.'",
            ),
            immutable("spec.oracleCloudStorage.bucket"),
        ),
    ]
    namespace: Annotated[
        str,
        Field(
            min_length=1,
            max_length=63,
            description=(
                "The tenancy's Object Storage namespace (a DNS label: lowercase letters, digits "
                "and '-'). Immutable."
            ),
        ),
        Checks(
            pattern_rule(
                "spec.oracleCloudStorage.namespace",
                f"^{_DNS_LABEL}$",
                "must use only lowercase letters, digits and '-', "
                "and start and end with a letter or digit",
            ),
            immutable("spec.oracleCloudStorage.namespace"),
        ),
    ]
    region: Annotated[
        str,
        Field(
            max_length=32,
            description="OCI region identifier, such as us-ashburn-1. Immutable.",
        ),
        Checks(
            region_rule("spec.oracleCloudStorage.region", "us-ashburn-1"),
            immutable("spec.oracleCloudStorage.region"),
        ),
    ]


class Webhook(RuleModel):
    """An HTTPS endpoint that receives deliveries. The Secret (spec.credentials.secretRef.name)
    must hold verificationToken (sent in a request header, so that the receiver can tell the
    requests are genuine), and optionally bearerToken (sent as Authorization: Bearer).
    """

    url: Annotated[
        str,
        Field(
            max_length=2048,
            description=(
                "URL that receives deliveries, such as https://hooks.example.com/destinations. "
                "https:// is required unless spec.environment is Development. No "
                "user:password@. May change (the Destination is then verified again)."
            ),
        ),
        Checks(pattern_rule("spec.webhook.url", URL_PATTERN, _URL_ALLOWED)),
    ]


Member = (
    AmazonS3
    | S3Compatible
    | GoogleCloudStorage
    | AzureBlobStorage
    | AlibabaOSS
    | OracleCloudStorage
    | Webhook
)
"""One of the member blocks."""


# --- the rest of spec --------------------------------------------------------


class SecretRef(RuleModel):
    """A Secret in the Destination's own namespace (there is no namespace field: references across
    namespaces are impossible).
    """

    name: Annotated[
        str,
        Field(
            min_length=1,
            max_length=253,
            description=(
                "Name of the Secret. Keys per spec.type: AmazonS3, S3Compatible and "
                "OracleCloudStorage read accessKeyId and secretAccessKey (optional "
                "sessionToken); GoogleCloudStorage reads serviceAccountJson, or hmacAccessKey "
                "and hmacSecret; AzureBlobStorage reads accountKey, or sasToken, or "
                "connectionString; AlibabaOSS reads accessKeyId and accessKeySecret; Webhook "
                "reads verificationToken (optional bearerToken). Every type also reads "
                "caBundle (optional): PEM CA certificates that the probe trusts instead of the "
                "system's."
            ),
        ),
        Checks(
            pattern_rule(
                "spec.credentials.secretRef.name",
                _DNS_SUBDOMAIN,
                "must be a Secret name: lowercase letters, digits, '-' and '.', "
                "starting and ending with a letter or digit",
            )
        ),
    ]


class Credentials(RuleModel):
    """Where the credentials come from. Changing them (or the Secret's data) verifies the
    Destination
    again.
    """

    secret_ref: SecretRef = Field(
        description="It holds the credentials; the keys it needs are listed under name."
    )


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
                _duration_rule(
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
                _duration_rule(
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


_PROXY_PATH = "spec.transport.httpsProxy"
PROXY_PATTERN = f"^https?://{_HOST}/?$"
_PROXY_ALLOWED = (
    "must be an http:// or https:// URL of a proxy: a host name or IPv4 address and an "
    "optional :port; no path, query or user:password@"
)


def _no_userinfo(path: str) -> Rule:
    def check(value: str) -> bool:
        return "@" not in value

    return Rule(
        cel="!self.contains('@')",
        message=f"{path} must not contain user:password@: proxy credentials are not supported",
        check=check,
    )


class Transport(RuleModel):
    """How the probe's connections reach the target: through an HTTP(S) proxy, and whether the
    target's TLS certificate is verified. CA certificates to trust are not set here but in the
    Secret (spec.credentials.secretRef.name), under the optional key caBundle (PEM): they are
    trusted instead of the system's CAs, for every type.
    """

    https_proxy: (
        Annotated[
            str,
            Field(
                max_length=512,
                description=(
                    "URL of the proxy that the probe's https:// connections go through, such as "
                    "http://proxy.example.com:3128 (https:// for a proxy that itself speaks TLS). "
                    "The probe opens a CONNECT tunnel through it, so TLS runs from the operator "
                    "to the target and the proxy sees only the target's host and port; the "
                    "proxy resolves that host itself. http:// targets (Development only) are "
                    "reached directly. A host name or IPv4 address and an optional :port; no "
                    "user:password@ (proxy credentials are not supported). The operator checks "
                    "the proxy's address as it checks endpoints (cloud metadata and link-local "
                    "addresses are refused, private ones unless the operator allows them)."
                ),
            ),
            Checks(
                pattern_rule(_PROXY_PATH, PROXY_PATTERN, _PROXY_ALLOWED),
                _no_userinfo(_PROXY_PATH),
            ),
        ]
        | None
    ) = None
    insecure_skip_tls_verify: bool = Field(
        default=False,
        alias="insecureSkipTLSVerify",
        description=(
            "true: the probe does not verify the target's TLS certificate nor its host name. "
            "Allowed only when spec.environment is Development (for a test server with a "
            "throw-away certificate); the Verified condition's message then says that TLS "
            "verification was skipped. Elsewhere, put the CA that signed the certificate in the "
            "Secret's caBundle key."
        ),
    )


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


def _prefix_rules() -> tuple[Rule, ...]:
    path = "spec.pathPrefix"

    def no_leading_slash(value: str) -> bool:
        return not value.startswith("/")

    def no_empty_segment(value: str) -> bool:
        return "//" not in value

    return (
        pattern_rule(
            path,
            PREFIX_PATTERN,
            "may contain only letters, digits, '.', '_', '-', '=', '/' and the tokens "
            "%COLLECTION_ID%, %COLLECTION_NAME%, %RESULT_SET_ID% and %DATE%",
        ),
        Rule(
            cel="!self.startsWith('/')",
            message=f"{path} must not start with '/'",
            check=no_leading_slash,
        ),
        _no_double_dot(path, "'..'"),
        Rule(
            cel="!self.contains('//')",
            message=f"{path} must not contain '//' (an empty folder name)",
            check=no_empty_segment,
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
            Checks(*_prefix_rules()),
        ]
        | None
    ) = None
    credentials: Credentials = Field(
        description="Which keys the Secret needs depends on spec.type."
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

    cel_rules: ClassVar[tuple[AnyRule, ...]] = _union_rules() + _https_rules() + _transport_rules()

    @property
    def member(self) -> Member:
        """The member block that `type` selects (validation guarantees it is set)."""
        block = getattr(self, MEMBER_FIELDS[self.type][0])
        if block is None:  # only for a spec built without validation
            raise SpecError(f"spec.{MEMBER_FIELDS[self.type][1]}", "Required value")
        return cast(Member, block)

    @property
    def secret_name(self) -> str:
        return self.credentials.secret_ref.name


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
