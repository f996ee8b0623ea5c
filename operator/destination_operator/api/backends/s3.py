"""The S3 family: `AmazonS3`, `S3Compatible` and `OracleCloudStorage` (OCI's S3 API).

The three blocks that `providers/s3.py` serves, with the bucket naming rules
they share.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import Field

from ..rules import (
    DNS_LABEL,
    AnyRule,
    Checks,
    Rule,
    RuleModel,
    endpoint_rules,
    immutable,
    immutable_optional,
    no_double_dot,
    not_ip,
    pattern_rule,
)

__all__ = [
    "AmazonS3",
    "OracleCloudStorage",
    "S3Compatible",
    "ServerSideEncryption",
    "region_rule",
    "s3_bucket_rules",
]


class ServerSideEncryption(StrEnum):
    """The x-amz-server-side-encryption header sent with every object."""

    AES256 = "AES256"
    AwsKms = "aws:kms"
    AwsKmsDsse = "aws:kms:dsse"


def s3_bucket_rules(path: str, *, amazon: bool) -> tuple[Rule, ...]:
    """Amazon S3's general purpose bucket naming rules (the reserved affixes only for Amazon)."""
    rules = [
        pattern_rule(
            path,
            "^[a-z0-9][-a-z0-9.]*[a-z0-9]$",
            "must use only lowercase letters, digits, '.' and '-', "
            "and start and end with a letter or digit",
        ),
        no_double_dot(path),
        not_ip(path),
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


_REGION_PATTERN = "^[a-z]{2,}(-[a-z]+)+-[0-9]+$"


def region_rule(path: str, example: str) -> Rule:
    """A cloud region id such as us-east-1 or us-ashburn-1."""
    return pattern_rule(
        path,
        _REGION_PATTERN,
        f"must be a region id: lowercase words joined by '-' ending in a number, such as {example}",
    )


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

    def location(self) -> str:
        """Where data goes: `s3://<bucket>`."""
        return f"s3://{self.bucket}"


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

    def location(self) -> str:
        """Where data goes: `<endpoint>/<bucket>`."""
        return f"{self.endpoint.rstrip('/')}/{self.bucket}"


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
                f"^{DNS_LABEL}$",
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

    def location(self) -> str:
        """Where data goes: `oci://<namespace>/<bucket>`."""
        return f"oci://{self.namespace}/{self.bucket}"
