"""`spec.credentials`: a Secret, a ServiceAccount of the Destination's namespace, or the
operator's own identity; exactly one.

- `secretRef`: static keys in a Secret of the Destination's own namespace.
- `serviceAccountName`: workload identity at object level. The operator requests a
  short-lived token for that ServiceAccount (TokenRequest, the cloud's audience) and
  exchanges it with the cloud; which cloud identity it becomes is read from the
  ServiceAccount's annotations in the cloud's own convention, never from the spec, so
  a tenant can only use an identity their own namespace's ServiceAccounts carry and
  the cloud's trust policy grants to that ServiceAccount.
- `operatorIdentity: {}`: the operator's own identity (its pod's projected token),
  asked for explicitly, never a fallback. The operator refuses it unless its settings
  allow it, and the CRD refuses it for every type whose endpoint a tenant chooses:
  the operator's token never goes to a server a tenant picked.

Only `IDENTITY_TYPES` take an identity; the rules that need `spec.type` are built
here (`identity_rules`) and attached to the spec.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from .rules import DNS_LABEL, Checks, FieldReason, Rule, RuleModel, pattern_rule

__all__ = [
    "IDENTITY_TYPES",
    "Credentials",
    "OperatorIdentity",
    "SecretRef",
    "identity_rules",
]

_DNS_SUBDOMAIN = f"^{DNS_LABEL}([.]{DNS_LABEL})*$"

IDENTITY_TYPES = ("AmazonS3", "GoogleCloudStorage", "AzureBlobStorage")
"""The types whose storage trusts a cloud's workload identity: their endpoints are the
cloud's own (AzureBlobStorage's `endpoint`, when set, excepted for the operator's
identity). S3Compatible, OracleCloudStorage, AlibabaOSS and Webhook take a Secret."""


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


class OperatorIdentity(RuleModel):
    """The operator's own cloud identity (its pod's projected ServiceAccount token). No fields:
    setting it is the explicit request. Refused unless the operator runs with
    operator_identity on; when the operator names a default_service_account, that
    ServiceAccount of the Destination's namespace is used instead.
    """


def _one_source(credentials: Credentials) -> bool:
    given = (
        credentials.secret_ref is not None,
        credentials.service_account_name is not None,
        credentials.operator_identity is not None,
    )
    return sum(given) == 1


class Credentials(RuleModel):
    """Where the credentials come from: exactly one of secretRef, serviceAccountName and
    operatorIdentity. Changing them (or the Secret's data) verifies the Destination again; a
    ServiceAccount's changed annotations take effect at its next verification.
    """

    secret_ref: SecretRef | None = Field(
        default=None,
        description="It holds the credentials; the keys it needs are listed under name.",
    )
    service_account_name: (
        Annotated[
            str,
            Field(
                min_length=1,
                max_length=253,
                description=(
                    "A ServiceAccount in the Destination's own namespace whose token the "
                    "operator requests and exchanges with the cloud (AmazonS3, "
                    "GoogleCloudStorage and AzureBlobStorage only). The cloud identity is read "
                    "from its annotations: eks.amazonaws.com/role-arn (AWS); "
                    "iam.gke.io/gcp-service-account (Google); azure.workload.identity/client-id "
                    "and azure.workload.identity/tenant-id (Azure). Refused unless the operator "
                    "runs with object_level_identity on."
                ),
            ),
            Checks(
                pattern_rule(
                    "spec.credentials.serviceAccountName",
                    _DNS_SUBDOMAIN,
                    "must be a ServiceAccount name: lowercase letters, digits, '-' and '.', "
                    "starting and ending with a letter or digit",
                )
            ),
        ]
        | None
    ) = None
    operator_identity: OperatorIdentity | None = Field(
        default=None,
        description=(
            "Set to {}. AmazonS3, GoogleCloudStorage, and AzureBlobStorage without "
            "spec.azureBlobStorage.endpoint, only."
        ),
    )

    cel_rules = (
        Rule(
            cel=(
                "[has(self.secretRef), has(self.serviceAccountName), "
                "has(self.operatorIdentity)].filter(x, x).size() == 1"
            ),
            message=(
                "spec.credentials must set exactly one of secretRef, serviceAccountName and "
                "operatorIdentity"
            ),
            check=_one_source,
        ),
    )

    @property
    def uses_identity(self) -> bool:
        """True for a ServiceAccount or the operator's identity: no Secret is read."""
        return self.secret_ref is None


def _identity_type(spec: Any) -> bool:
    credentials = spec.credentials
    return credentials.secret_ref is not None or str(spec.type) in IDENTITY_TYPES


def _operator_identity_endpoint(spec: Any) -> bool:
    azure = spec.azure_blob_storage
    return spec.credentials.operator_identity is None or azure is None or azure.endpoint is None


def identity_rules() -> tuple[Rule, ...]:
    """The rules on `spec` that join credentials and type (`self` is the spec)."""
    types = ", ".join(f"'{name}'" for name in IDENTITY_TYPES)
    named = ", ".join(IDENTITY_TYPES[:-1]) + f" and {IDENTITY_TYPES[-1]}"
    return (
        Rule(
            cel=f"has(self.credentials.secretRef) || self.type in [{types}]",
            message=(
                f"spec.credentials may set serviceAccountName or operatorIdentity only for "
                f"{named}: S3Compatible, OracleCloudStorage, AlibabaOSS and Webhook need a "
                "secretRef"
            ),
            check=_identity_type,
            field_path=".credentials",
            reason=FieldReason.FieldValueForbidden,
        ),
        Rule(
            cel=(
                "!has(self.credentials.operatorIdentity) || !has(self.azureBlobStorage) || "
                "!has(self.azureBlobStorage.endpoint)"
            ),
            message=(
                "spec.credentials.operatorIdentity may not be used with "
                "spec.azureBlobStorage.endpoint: the operator's own token never goes to an "
                "endpoint a Destination chose (use serviceAccountName or a secretRef)"
            ),
            check=_operator_identity_endpoint,
            field_path=".credentials.operatorIdentity",
            reason=FieldReason.FieldValueForbidden,
        ),
    )
