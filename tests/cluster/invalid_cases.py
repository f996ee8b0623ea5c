"""Destinations that admission must refuse, each with a part of the message that says why.

One table, two checks: tests/cluster/test_admission.py sends every case to the
real API server (the CRD's schema and CEL rules), and
tests/unit/test_api_invalid_cases.py runs it through the models and the lint
checks offline. `expect` must appear in both messages, so the two stay alike.
This module imports nothing from the project, so both can load it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

SECRET = {"secretRef": {"name": "credentials"}}

VALID: dict[str, dict[str, Any]] = {
    "AmazonS3": {
        "type": "AmazonS3",
        "amazonS3": {"bucket": "example-bucket", "region": "us-east-1"},
        "credentials": SECRET,
    },
    "S3Compatible": {
        "type": "S3Compatible",
        "s3Compatible": {
            "endpoint": "https://minio.example.com:9000",
            "bucket": "example-bucket",
            "forcePathStyle": True,
        },
        "credentials": SECRET,
    },
    "GoogleCloudStorage": {
        "type": "GoogleCloudStorage",
        "googleCloudStorage": {"bucket": "example-bucket"},
        "credentials": SECRET,
    },
    "AzureBlobStorage": {
        "type": "AzureBlobStorage",
        "azureBlobStorage": {"storageAccountName": "exampleaccount", "containerName": "deliveries"},
        "credentials": SECRET,
    },
    "AlibabaOSS": {
        "type": "AlibabaOSS",
        "alibabaOSS": {"bucket": "example-bucket", "region": "oss-cn-hangzhou"},
        "credentials": SECRET,
    },
    "OracleCloudStorage": {
        "type": "OracleCloudStorage",
        "oracleCloudStorage": {
            "bucket": "Example_Bucket",
            "namespace": "examplens",
            "region": "us-ashburn-1",
        },
        "credentials": SECRET,
    },
    "Webhook": {
        "type": "Webhook",
        "webhook": {"url": "https://hooks.example.com/deliveries"},
        "credentials": SECRET,
    },
}
"""One valid spec per type; every case below breaks one of them in one way."""

DELETE = object()
"""As a value in `changes`: remove the field."""


@dataclass(frozen=True)
class Case:
    """A Destination that must be refused, and a part of the message saying why."""

    id: str
    base: str
    changes: dict[str, Any]
    expect: str
    name: str = "invalid"
    without_spec: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def spec(self) -> Any:
        """The spec to send: the base with `changes` (dotted paths) applied."""
        spec: Any = copy.deepcopy(VALID[self.base])
        for path, value in self.changes.items():
            if path == "":
                spec = copy.deepcopy(value)
                continue
            *parents, leaf = path.split(".")
            node = spec
            for part in parents:
                node = node.setdefault(part, {})
            if value is DELETE:
                node.pop(leaf, None)
            else:
                node[leaf] = copy.deepcopy(value)
        return spec

    def manifest(self, namespace: str | None = None) -> dict[str, Any]:
        """The whole Destination object."""
        metadata: dict[str, Any] = {"name": self.name}
        if namespace is not None:
            metadata["namespace"] = namespace
        body: dict[str, Any] = {
            "apiVersion": "destinations.io/v1alpha1",
            "kind": "Destination",
            "metadata": metadata,
        }
        if not self.without_spec:
            body["spec"] = self.spec()
        body.update(copy.deepcopy(self.extra))
        return body


INTERVAL_MESSAGE = (
    "spec.verification.interval must be 0s (never periodically) or a Go duration of at least 1m, "
    "such as 1h, 30m or 1h30m: numbers with units h, m, s, ms, us or ns, no sign"
)
"""The whole message of the interval rule: every refused interval gets exactly this."""

ACCEPTED_INTERVALS = ["0s", "0", "0h0m", "1m", "60s", "90s", "1h", "1h30m", "2562047h"]
"""`spec.verification.interval` values both sides must accept (0s and its spellings: never
periodically; otherwise at least 1m)."""


ACCEPTED_CREDENTIALS: list[tuple[str, dict[str, Any]]] = [
    ("AmazonS3", {"serviceAccountName": "uploader"}),
    ("AmazonS3", {"operatorIdentity": {}}),
    ("GoogleCloudStorage", {"serviceAccountName": "gcs.uploader"}),
    ("AzureBlobStorage", {"operatorIdentity": {}}),
    ("S3Compatible", {"secretRef": {"name": "credentials"}}),
]
"""`spec.credentials` that both sides accept, with the type they go with."""


def _c(case_id: str, base: str, changes: dict[str, Any], expect: str, **kw: Any) -> Case:
    return Case(case_id, base, changes, expect, **kw)


CASES: list[Case] = [
    # --- the union -----------------------------------------------------------
    _c("type-missing", "AmazonS3", {"type": DELETE}, "spec.type: Required value"),
    _c("type-unknown", "AmazonS3", {"type": "Dropbox"}, 'supported values: "AmazonS3"'),
    _c("type-lowercase", "AmazonS3", {"type": "amazons3"}, 'supported values: "AmazonS3"'),
    _c(
        "member-missing",
        "AmazonS3",
        {"amazonS3": DELETE},
        "spec.amazonS3 is required when spec.type is AmazonS3",
    ),
    _c(
        "member-null",
        "GoogleCloudStorage",
        {"googleCloudStorage": None},
        "spec.googleCloudStorage is required when spec.type is GoogleCloudStorage",
    ),
    _c(
        "member-of-other-type",
        "Webhook",
        {"webhook": DELETE, "s3Compatible": VALID["S3Compatible"]["s3Compatible"]},
        "spec.webhook is required when spec.type is Webhook",
    ),
    _c(
        "two-members",
        "AmazonS3",
        {"webhook": {"url": "https://hooks.example.com/x"}},
        "spec.webhook must not be set unless spec.type is Webhook",
    ),
    _c(
        "member-empty",
        "AzureBlobStorage",
        {"azureBlobStorage": {}},
        "spec.azureBlobStorage.storageAccountName: Required value",
    ),
    _c(
        "webhook-url-missing",
        "Webhook",
        {"webhook.url": DELETE},
        "spec.webhook.url: Required value",
    ),
    # --- https in Production and Staging --------------------------------------
    _c(
        "s3compatible-http-production",
        "S3Compatible",
        {"s3Compatible.endpoint": "http://minio.example.com:9000"},
        "spec.s3Compatible.endpoint must start with https:// when spec.environment is Production",
    ),
    _c(
        "webhook-http-staging",
        "Webhook",
        {"environment": "Staging", "webhook.url": "http://hooks.example.com/x"},
        "spec.webhook.url must start with https://",
    ),
    _c(
        "azure-endpoint-http",
        "AzureBlobStorage",
        {"azureBlobStorage.endpoint": "http://127.0.0.1:10000/exampleaccount"},
        "spec.azureBlobStorage.endpoint must start with https://",
    ),
    _c(
        "oss-endpoint-http",
        "AlibabaOSS",
        {"alibabaOSS.endpoint": "http://oss-cn-hangzhou.aliyuncs.com"},
        "spec.alibabaOSS.endpoint must start with https://",
    ),
    # --- URL syntax -------------------------------------------------------------
    _c(
        "webhook-url-userinfo",
        "Webhook",
        {"webhook.url": "https://user:password@hooks.example.com/x"},
        "spec.webhook.url must be an http:// or https:// URL",
    ),
    _c(
        "webhook-url-ftp",
        "Webhook",
        {"webhook.url": "ftp://hooks.example.com/x"},
        "spec.webhook.url must be an http:// or https:// URL",
    ),
    _c(
        "webhook-url-space",
        "Webhook",
        {"webhook.url": "https://hooks.example.com/a b"},
        "spec.webhook.url must be an http:// or https:// URL",
    ),
    _c(
        "endpoint-query",
        "S3Compatible",
        {"s3Compatible.endpoint": "https://minio.example.com/?region=x"},
        "spec.s3Compatible.endpoint must be an http:// or https:// URL",
    ),
    _c(
        "endpoint-not-a-url",
        "AlibabaOSS",
        {"alibabaOSS.endpoint": "oss-cn-hangzhou.aliyuncs.com"},
        "spec.alibabaOSS.endpoint must be an http:// or https:// URL",
    ),
    # --- pathPrefix -----------------------------------------------------------------
    _c(
        "prefix-leading-slash",
        "AmazonS3",
        {"pathPrefix": "/exports/"},
        "spec.pathPrefix must not start with '/'",
    ),
    _c(
        "prefix-dotdot",
        "AmazonS3",
        {"pathPrefix": "exports/../secrets/"},
        "spec.pathPrefix must not contain '..'",
    ),
    _c(
        "prefix-unknown-token",
        "AmazonS3",
        {"pathPrefix": "exports/%YEAR%/"},
        "spec.pathPrefix may contain only letters, digits",
    ),
    _c(
        "prefix-lowercase-token",
        "GoogleCloudStorage",
        {"pathPrefix": "exports/%date%/"},
        "spec.pathPrefix may contain only letters, digits",
    ),
    _c(
        "prefix-unicode",
        "Webhook",
        {"pathPrefix": "exportés/"},
        "spec.pathPrefix may contain only letters, digits",
    ),
    _c("prefix-empty-folder", "AmazonS3", {"pathPrefix": "a//b/"}, "must not contain '//'"),
    _c(
        "prefix-too-long",
        "AmazonS3",
        {"pathPrefix": "a" * 257},
        "Too long: may not be more than 256",
    ),
    # --- displayName -------------------------------------------------------------
    _c("display-name-short", "AmazonS3", {"displayName": "ab"}, "should be at least 3 chars long"),
    _c(
        "display-name-long",
        "AmazonS3",
        {"displayName": "d" * 64},
        "Too long: may not be more than 63",
    ),
    _c(
        "display-name-long-unicode",
        "AmazonS3",
        {"displayName": "\U0001f680" * 64},
        "Too long: may not be more than 63",
    ),
    _c("display-name-number", "AmazonS3", {"displayName": 12345}, "must be of type string"),
    # --- Amazon S3 ------------------------------------------------------------------
    _c(
        "s3-bucket-uppercase",
        "AmazonS3",
        {"amazonS3.bucket": "Example-Bucket"},
        "spec.amazonS3.bucket must use only lowercase letters",
    ),
    _c(
        "s3-bucket-ip",
        "AmazonS3",
        {"amazonS3.bucket": "192.168.5.4"},
        "spec.amazonS3.bucket must not be formatted as an IP address",
    ),
    _c(
        "s3-bucket-double-dot",
        "AmazonS3",
        {"amazonS3.bucket": "example..bucket"},
        "must not contain two adjacent periods",
    ),
    _c(
        "s3-bucket-short",
        "AmazonS3",
        {"amazonS3.bucket": "ab"},
        "should be at least 3 chars long",
    ),
    _c(
        "s3-bucket-trailing-hyphen",
        "AmazonS3",
        {"amazonS3.bucket": "example-"},
        "spec.amazonS3.bucket must use only lowercase letters",
    ),
    _c(
        "s3-bucket-reserved-suffix",
        "AmazonS3",
        {"amazonS3.bucket": "example-s3alias"},
        "reserved by Amazon S3",
    ),
    _c(
        "s3-bucket-reserved-prefix",
        "AmazonS3",
        {"amazonS3.bucket": "xn--example"},
        "reserved by Amazon S3",
    ),
    _c(
        "s3-region-uppercase",
        "AmazonS3",
        {"amazonS3.region": "US-EAST-1"},
        "spec.amazonS3.region must be a region id",
    ),
    _c(
        "s3-sse-unknown",
        "AmazonS3",
        {"amazonS3.serverSideEncryption": "kms"},
        'supported values: "AES256"',
    ),
    _c(
        "s3compatible-bucket-underscore",
        "S3Compatible",
        {"s3Compatible.bucket": "example_bucket"},
        "spec.s3Compatible.bucket must use only lowercase letters",
    ),
    _c(
        "s3compatible-region-space",
        "S3Compatible",
        {"s3Compatible.region": "us east"},
        "spec.s3Compatible.region must use only letters",
    ),
    _c(
        "s3compatible-path-style-string",
        "S3Compatible",
        {"s3Compatible.forcePathStyle": "true"},
        "must be of type boolean",
    ),
    # --- Google Cloud Storage -------------------------------------------------------
    _c(
        "gcs-bucket-google",
        "GoogleCloudStorage",
        {"googleCloudStorage.bucket": "my-google-exports"},
        "must not start with 'goog' nor contain 'google'",
    ),
    _c(
        "gcs-bucket-64",
        "GoogleCloudStorage",
        {"googleCloudStorage.bucket": "b" * 64},
        "must be at most 63 characters (at most 222 if it contains dots)",
    ),
    _c(
        "gcs-bucket-long-part",
        "GoogleCloudStorage",
        {"googleCloudStorage.bucket": "example." + "b" * 64},
        "must not have a dot-separated part longer than 63 characters",
    ),
    _c(
        "gcs-bucket-223",
        "GoogleCloudStorage",
        {"googleCloudStorage.bucket": ".".join(["b" * 55] * 4) + "bbb"},
        "Too long: may not be more than 222",
    ),
    # --- Azure Blob Storage ------------------------------------------------------------
    _c(
        "azure-account-uppercase",
        "AzureBlobStorage",
        {"azureBlobStorage.storageAccountName": "ExampleAccount"},
        "spec.azureBlobStorage.storageAccountName must use only lowercase letters and digits",
    ),
    _c(
        "azure-account-too-long",
        "AzureBlobStorage",
        {"azureBlobStorage.storageAccountName": "a" * 25},
        "Too long: may not be more than 24",
    ),
    _c(
        "azure-container-double-hyphen",
        "AzureBlobStorage",
        {"azureBlobStorage.containerName": "daily--exports"},
        "spec.azureBlobStorage.containerName must use only lowercase letters, digits and single",
    ),
    _c(
        "azure-container-leading-hyphen",
        "AzureBlobStorage",
        {"azureBlobStorage.containerName": "-exports"},
        "spec.azureBlobStorage.containerName must use only lowercase letters, digits and single",
    ),
    _c(
        "azure-product-unknown",
        "AzureBlobStorage",
        {"azureBlobStorage.product": "Snowflake"},
        'supported values: "Databricks"',
    ),
    # --- Alibaba OSS --------------------------------------------------------------------
    _c(
        "oss-region-unknown",
        "AlibabaOSS",
        {"alibabaOSS.region": "oss-cn-atlantis"},
        'supported values: "oss-cn-hangzhou"',
    ),
    _c(
        "oss-region-without-prefix",
        "AlibabaOSS",
        {"alibabaOSS.region": "cn-hangzhou"},
        'supported values: "oss-cn-hangzhou"',
    ),
    _c(
        "oss-bucket-dot",
        "AlibabaOSS",
        {"alibabaOSS.bucket": "example.bucket"},
        "spec.alibabaOSS.bucket must use only lowercase letters, digits and '-'",
    ),
    # --- Oracle Cloud ----------------------------------------------------------------------
    _c(
        "oci-bucket-slash",
        "OracleCloudStorage",
        {"oracleCloudStorage.bucket": "exports/daily"},
        "spec.oracleCloudStorage.bucket must use only letters, digits",
    ),
    _c(
        "oci-namespace-uppercase",
        "OracleCloudStorage",
        {"oracleCloudStorage.namespace": "ExampleNS"},
        "spec.oracleCloudStorage.namespace must use only lowercase letters",
    ),
    _c(
        "oci-region-name",
        "OracleCloudStorage",
        {"oracleCloudStorage.region": "Ashburn"},
        "spec.oracleCloudStorage.region must be a region id",
    ),
    _c(
        "oci-namespace-missing",
        "OracleCloudStorage",
        {"oracleCloudStorage.namespace": DELETE},
        "spec.oracleCloudStorage.namespace: Required value",
    ),
    # --- verification ----------------------------------------------------------------------
    _c("interval-words", "AmazonS3", {"verification": {"interval": "1 hour"}}, INTERVAL_MESSAGE),
    _c("interval-negative", "AmazonS3", {"verification": {"interval": "-1h"}}, INTERVAL_MESSAGE),
    _c("interval-no-unit", "AmazonS3", {"verification": {"interval": "10"}}, INTERVAL_MESSAGE),
    _c("interval-days", "AmazonS3", {"verification": {"interval": "1d"}}, INTERVAL_MESSAGE),
    # above 0s but below the 1m minimum: the operator would probe (almost) back to back
    _c("interval-1ns", "AmazonS3", {"verification": {"interval": "1ns"}}, INTERVAL_MESSAGE),
    _c("interval-500ms", "AmazonS3", {"verification": {"interval": "500ms"}}, INTERVAL_MESSAGE),
    _c("interval-59s", "AmazonS3", {"verification": {"interval": "59s"}}, INTERVAL_MESSAGE),
    _c(
        "interval-just-below-1m",
        "AmazonS3",
        {"verification": {"interval": "59.999999999s"}},
        INTERVAL_MESSAGE,
    ),
    _c(
        "timeout-zero",
        "AmazonS3",
        {"verification": {"timeout": "0s"}},
        "spec.verification.timeout must be a Go duration greater than 0s and at most 10m",
    ),
    _c(
        "timeout-too-long",
        "AmazonS3",
        {"verification": {"timeout": "1h"}},
        "spec.verification.timeout must be a Go duration greater than 0s and at most 10m",
    ),
    _c(
        "interval-number",
        "AmazonS3",
        {"verification": {"interval": 3600}},
        "must be of type string",
    ),
    _c(
        "mode-unknown",
        "AmazonS3",
        {"verification": {"mode": "Delete"}},
        'supported values: "WriteDelete"',
    ),
    # --- transport -------------------------------------------------------------------------------
    _c(
        "transport-insecure-in-production",
        "S3Compatible",
        {"transport": {"insecureSkipTLSVerify": True}},
        "spec.transport.insecureSkipTLSVerify may be true only when spec.environment is "
        "Development",
    ),
    _c(
        "transport-insecure-in-staging",
        "Webhook",
        {"environment": "Staging", "transport": {"insecureSkipTLSVerify": True}},
        "spec.transport.insecureSkipTLSVerify may be true only when spec.environment is "
        "Development",
    ),
    _c(
        "transport-insecure-string",
        "AzureBlobStorage",
        {"environment": "Development", "transport": {"insecureSkipTLSVerify": "true"}},
        "must be of type boolean",
    ),
    _c(
        "transport-proxy-userinfo",
        "AmazonS3",
        {"transport": {"httpsProxy": "http://user:password@proxy.example.com:3128"}},
        "spec.transport.httpsProxy must not contain user:password@",
    ),
    _c(
        "transport-proxy-path",
        "GoogleCloudStorage",
        {"transport": {"httpsProxy": "http://proxy.example.com:3128/proxy"}},
        "spec.transport.httpsProxy must be an http:// or https:// URL of a proxy",
    ),
    _c(
        "transport-proxy-socks",
        "AlibabaOSS",
        {"transport": {"httpsProxy": "socks5://proxy.example.com:1080"}},
        "spec.transport.httpsProxy must be an http:// or https:// URL of a proxy",
    ),
    _c(
        "transport-ca-bundle-in-spec",
        "OracleCloudStorage",
        {"transport": {"caBundle": "-----BEGIN CERTIFICATE-----"}},
        'unknown field "spec.transport.caBundle"',
    ),
    # --- flags, types and structure ----------------------------------------------------------
    _c("enabled-string", "AmazonS3", {"enabled": "yes"}, "must be of type boolean"),
    _c("archived-number", "AmazonS3", {"archived": 1}, "must be of type boolean"),
    _c(
        "environment-unknown", "AmazonS3", {"environment": "Prod"}, 'supported values: "Production"'
    ),
    _c("unknown-field", "AmazonS3", {"bucket": "example-bucket"}, 'unknown field "spec.bucket"'),
    _c(
        "unknown-member-field",
        "AmazonS3",
        {"amazonS3.endpoint": "https://s3.example.com"},
        'unknown field "spec.amazonS3.endpoint"',
    ),
    _c(
        "secret-other-namespace",
        "AmazonS3",
        {"credentials": {"secretRef": {"name": "credentials", "namespace": "kube-system"}}},
        'unknown field "spec.credentials.secretRef.namespace"',
    ),
    _c(
        "credentials-missing",
        "AmazonS3",
        {"credentials": DELETE},
        "spec.credentials: Required value",
    ),
    _c(
        "secret-name-invalid",
        "AmazonS3",
        {"credentials": {"secretRef": {"name": "My_Credentials"}}},
        "spec.credentials.secretRef.name must be a Secret name",
    ),
    # --- workload identity: exactly one source, only where the cloud's own endpoint is --------
    _c(
        "credentials-secret-and-service-account",
        "AmazonS3",
        {"credentials.serviceAccountName": "uploader"},
        "spec.credentials must set exactly one of secretRef, serviceAccountName",
    ),
    _c(
        "credentials-service-account-and-operator",
        "GoogleCloudStorage",
        {"credentials": {"serviceAccountName": "uploader", "operatorIdentity": {}}},
        "spec.credentials must set exactly one of secretRef, serviceAccountName",
    ),
    _c(
        "credentials-empty",
        "AmazonS3",
        {"credentials": {}},
        "spec.credentials must set exactly one of secretRef, serviceAccountName",
    ),
    _c(
        "service-account-name-invalid",
        "AmazonS3",
        {"credentials": {"serviceAccountName": "Uploader_1"}},
        "spec.credentials.serviceAccountName must be a ServiceAccount name",
    ),
    _c(
        "service-account-s3-compatible",
        "S3Compatible",
        {"credentials": {"serviceAccountName": "uploader"}},
        "spec.credentials may set serviceAccountName or operatorIdentity only for AmazonS3",
    ),
    _c(
        "operator-identity-webhook",
        "Webhook",
        {"credentials": {"operatorIdentity": {}}},
        "spec.credentials may set serviceAccountName or operatorIdentity only for AmazonS3",
    ),
    _c(
        "operator-identity-azure-endpoint",
        "AzureBlobStorage",
        {
            "credentials": {"operatorIdentity": {}},
            "azureBlobStorage.endpoint": "https://blob.example.com",
        },
        "spec.credentials.operatorIdentity may not be used with spec.azureBlobStorage.endpoint",
    ),
    _c(
        "operator-identity-role",
        "AmazonS3",
        {"credentials": {"operatorIdentity": {"roleArn": "arn:aws:iam::123456789012:role/x"}}},
        'unknown field "spec.credentials.operatorIdentity.roleArn"',
    ),
    _c("bucket-number", "AmazonS3", {"amazonS3.bucket": 12345}, "must be of type string"),
    _c("member-string", "AmazonS3", {"amazonS3": "example-bucket"}, "must be of type object"),
    _c("spec-list", "AmazonS3", {"": ["type", "AmazonS3"]}, "must be of type object"),
    _c(
        "huge-value",
        "AmazonS3",
        {"amazonS3.bucket": "b" * 1_000_000},
        "Too long: may not be more than 63",
    ),
    _c("spec-missing", "AmazonS3", {}, "spec: Required value", without_spec=True),
    _c(
        "name-unicode",
        "AmazonS3",
        {},
        "lowercase RFC 1123 subdomain",
        name="destinación",
    ),
]

assert len({case.id for case in CASES}) == len(CASES), "case ids must be unique"
