"""The chart's values for the operator's own cloud identity, rendered by helm (no cluster).

For each cloud, what its webhook (EKS's pod identity webhook, AKS's workload identity
webhook) would inject, or what GKE lacks: a projected ServiceAccount token with the
audience the cloud's token service expects, mounted read-only, and the environment
`identity/aws.py`, `google.py` and `azure.py` read for the operator's own identity, the
token file's path pointing into that mount. Nothing of it without the value. The pod's
token really being the kubelet's, and really accepted, is tests/install/test_node_identity.py
(AWS) and test_node_identity_clouds.py (Google, Azure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import chart
from destination_operator.identity import aws, azure, google
from destination_operator.providers import azure_identity, google_identity
from destination_operator.settings import OperatorSettings

pytestmark = pytest.mark.install

PROVIDER = "projects/123456789/locations/global/workloadIdentityPools/cluster-pool/providers/kube"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "6f1b3a2e-0c4d-4e5f-8a9b-1c2d3e4f5a6b"
EMAIL = "uploader@project-1.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def helm() -> Path:
    return chart.helm_binary()


def pod(helm: Path, values: dict[str, Any]) -> dict[str, Any]:
    docs = [doc for doc in yaml.safe_load_all(chart.helm_template(helm, values=values)) if doc]
    (deployment,) = [doc for doc in docs if doc["kind"] == "Deployment"]
    return dict(deployment["spec"]["template"]["spec"])


def env(spec: dict[str, Any]) -> dict[str, str]:
    (container,) = spec["containers"]
    return {item["name"]: item.get("value", "") for item in container["env"]}


def projected(spec: dict[str, Any], token_file: str) -> dict[str, Any]:
    """The serviceAccountToken source whose file `token_file` is, via a read-only mount."""
    (container,) = spec["containers"]
    (mount,) = [m for m in container["volumeMounts"] if token_file.startswith(m["mountPath"] + "/")]
    assert mount.get("readOnly") is True
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    (source,) = volume["projected"]["sources"]
    token = dict(source["serviceAccountToken"])
    assert f"{mount['mountPath']}/{token['path']}" == token_file
    return token


OWN_ENV = {
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    google.TOKEN_FILE_ENV,
    google.SERVICE_ACCOUNT_ENV,
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
}


def test_without_the_values_the_pod_has_no_identity_token_or_environment(helm: Path) -> None:
    # the provider and tenant alone serve object-level identity: no token of the pod's own
    spec = pod(helm, {"gcp": {"workloadIdentityProvider": PROVIDER}, "azure": {"tenantId": TENANT}})
    assert not OWN_ENV & env(spec).keys()
    assert [v["name"] for v in spec["volumes"]] == ["tmp"]


def test_google_own_identity_mounts_a_token_for_the_providers_audience(helm: Path) -> None:
    values = {"gcp": {"workloadIdentityProvider": PROVIDER, "ownIdentity": True}}
    spec = pod(helm, values)
    found = env(spec)
    token = projected(spec, found[google.TOKEN_FILE_ENV])
    # the audience the operator presents the token for (google_identity.token_audience)
    identity = google_identity.google_identity({}, "the operator", default_provider=PROVIDER)
    assert token["audience"] == identity.token_audience
    assert token["audience"] == f"https://iam.googleapis.com/{PROVIDER}"
    assert token["expirationSeconds"] == 3600
    assert found["DESTINATION_OPERATOR_GCP_WORKLOAD_IDENTITY_PROVIDER"] == PROVIDER
    assert google.SERVICE_ACCOUNT_ENV not in found  # the federated principal itself

    values["gcp"]["serviceAccount"] = EMAIL
    found = env(pod(helm, values))
    assert found[google.SERVICE_ACCOUNT_ENV] == EMAIL
    # the operator reads that environment as its own identity
    own = google.Google(default_provider=PROVIDER, environ=found).operator_target()
    assert own.target.audience == token["audience"]
    assert own.target.details["service_account"] == EMAIL
    assert str(own.token_file) == found[google.TOKEN_FILE_ENV]


def test_azure_client_id_mounts_a_token_for_entra(helm: Path) -> None:
    spec = pod(helm, {"azure": {"tenantId": TENANT, "clientId": CLIENT}})
    found = env(spec)
    assert (found["AZURE_CLIENT_ID"], found["AZURE_TENANT_ID"]) == (CLIENT, TENANT)
    token = projected(spec, found["AZURE_FEDERATED_TOKEN_FILE"])
    assert token["audience"] == azure_identity.AUDIENCE == "api://AzureADTokenExchange"
    assert token["expirationSeconds"] == 3600
    own = azure.Azure(environ=found).operator_target()
    assert own.target.details == {"tenant": TENANT, "client": CLIENT}
    assert str(own.token_file) == found["AZURE_FEDERATED_TOKEN_FILE"]


def test_aws_role_arn_is_what_the_operator_reads(helm: Path) -> None:
    role = "arn:aws:iam::123456789012:role/destination-operator"
    spec = pod(helm, {"aws": {"roleArn": role}})
    found = env(spec)
    token = projected(spec, found["AWS_WEB_IDENTITY_TOKEN_FILE"])
    assert token["audience"] == aws.AUDIENCE
    own = aws.Aws(OperatorSettings(), environ=found).operator_target()
    assert own.target.details["role"] == role


def test_all_three_clouds_at_once_keep_their_own_mounts(helm: Path) -> None:
    values = {
        "aws": {"roleArn": "arn:aws:iam::123456789012:role/destination-operator"},
        "gcp": {"workloadIdentityProvider": PROVIDER, "ownIdentity": True},
        "azure": {"tenantId": TENANT, "clientId": CLIENT},
    }
    spec = pod(helm, values)
    found = env(spec)
    audiences = {
        projected(spec, found[name])["audience"]
        for name in (
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            google.TOKEN_FILE_ENV,
            "AZURE_FEDERATED_TOKEN_FILE",
        )
    }
    assert audiences == {
        "sts.amazonaws.com",
        f"https://iam.googleapis.com/{PROVIDER}",
        "api://AzureADTokenExchange",
    }


def test_the_identity_ca_config_map_is_mounted_and_is_the_bundle_the_operator_reads(
    helm: Path,
) -> None:
    template = "https://10.0.0.1:10000/{account}"
    values = {"identityCaConfigMap": "private-ca", "azure": {"blobEndpoint": template}}
    spec = pod(helm, values)
    found = env(spec)
    bundle = found["DESTINATION_OPERATOR_IDENTITY_CA_BUNDLE"]
    (container,) = spec["containers"]
    (mount,) = [m for m in container["volumeMounts"] if bundle.startswith(m["mountPath"] + "/")]
    assert mount["readOnly"] is True
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    (item,) = volume["configMap"]["items"]
    assert volume["configMap"]["name"] == "private-ca"
    assert f"{mount['mountPath']}/{item['path']}" == bundle and item["key"] == "ca.crt"
    # the settings the operator reads: the bundle, and the endpoint it is trusted at
    settings = OperatorSettings(
        identity_ca_bundle=bundle,
        azure_blob_endpoint=found["DESTINATION_OPERATOR_AZURE_BLOB_ENDPOINT"],
    )
    assert settings.azure_blob_endpoint == template
    assert "DESTINATION_OPERATOR_IDENTITY_CA_BUNDLE" not in env(pod(helm, {}))
    own_path = {"identityCaBundle": "/etc/ssl/private-ca.pem"}
    assert (
        env(pod(helm, own_path))["DESTINATION_OPERATOR_IDENTITY_CA_BUNDLE"]
        == own_path["identityCaBundle"]
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"gcp": {"ownIdentity": True}}, "gcp.ownIdentity needs gcp.workloadIdentityProvider"),
        (
            {"gcp": {"workloadIdentityProvider": PROVIDER, "serviceAccount": EMAIL}},
            "gcp.serviceAccount",
        ),
        ({"azure": {"clientId": CLIENT}}, "azure.clientId needs azure.tenantId"),
        ({"azure": {"tenantId": TENANT, "clientId": "not-a-guid"}}, "clientId"),
        (
            {
                "gcp": {
                    "workloadIdentityProvider": PROVIDER,
                    "ownIdentity": True,
                    "serviceAccount": "x@y",
                }
            },
            "serviceAccount",
        ),
        (
            {"identityCaBundle": "/etc/ca.pem", "identityCaConfigMap": "private-ca"},
            "set one",
        ),
        ({"azure": {"blobEndpoint": "https://10.0.0.1:10000/probeaccount"}}, "blobEndpoint"),
    ],
)
def test_incomplete_or_malformed_identity_values_are_refused(
    helm: Path, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(chart.ChartError, match=message):
        chart.helm_template(helm, values=values)
