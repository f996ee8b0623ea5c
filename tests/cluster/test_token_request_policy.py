"""The chart's grants for object-level workload identity, and its ValidatingAdmissionPolicy on
the operator's TokenRequests, on the real API server.

With `objectLevelIdentity` the operator may create a token for any ServiceAccount it can
reach; the policy lets its TokenRequests through only with the clouds' audiences and a short
lifetime. Here the rendered policy and binding are applied to the API server, and a
ServiceAccount standing for the operator (the one the chart names, in the release's
namespace, with the chart's token grant) asks for tokens.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

import chart
from harness import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("destination_crd")]

TOKEN_RULE = {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]}
GET_RULE = {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get"]}


def _render(cluster: Cluster, namespace: str, **values: Any) -> list[dict[str, Any]]:
    text = chart.helm_template(cluster.bin_dir / "helm", namespace=namespace, values=values)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _rules(rendered: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        rule
        for item in rendered
        if item["kind"] in ("ClusterRole", "Role")
        for rule in item["rules"]
    ]


def test_the_token_grant_and_the_policy_come_only_with_object_level_identity(
    cluster: Cluster, namespace: str
) -> None:
    off = _render(cluster, namespace)
    assert TOKEN_RULE not in _rules(off) and GET_RULE not in _rules(off)
    assert not [item for item in off if "ValidatingAdmissionPolicy" in item["kind"]]
    on = _render(cluster, namespace, objectLevelIdentity=True)
    assert TOKEN_RULE in _rules(on) and GET_RULE in _rules(on)
    assert sorted(item["kind"] for item in on if "Admission" in item["kind"]) == [
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    scoped = _render(cluster, namespace, objectLevelIdentity=True, namespaces=["team-a"])
    (role,) = [  # the watched namespace's (the other Role is the Lease's, in the release's)
        item
        for item in scoped
        if item["kind"] == "Role" and item["metadata"]["namespace"] == "team-a"
    ]
    assert TOKEN_RULE in role["rules"] and role["metadata"]["namespace"] == "team-a"
    cluster_role = next(item for item in scoped if item["kind"] == "ClusterRole")
    assert TOKEN_RULE not in cluster_role["rules"]  # only in the watched namespaces


@pytest.fixture
def policy(cluster: Cluster, namespace: str) -> Iterator[str]:
    """The chart's policy and binding, renamed for this test, applied; the operator's
    ServiceAccount name (in `namespace`, the release's)."""
    rendered = _render(cluster, namespace, objectLevelIdentity=True)
    account = next(i for i in rendered if i["kind"] == "ServiceAccount")["metadata"]["name"]
    objects = [item for item in rendered if "ValidatingAdmissionPolicy" in item["kind"]]
    name = f"token-requests-{namespace}"
    for item in objects:
        item["metadata"]["name"] = name
        if item["kind"] == "ValidatingAdmissionPolicyBinding":
            item["spec"]["policyName"] = name
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))
    try:
        yield account
    finally:
        cluster.kubectl(
            "delete",
            "validatingadmissionpolicybinding,validatingadmissionpolicy",
            name,
            "--ignore-not-found",
            "--wait=false",
            check=False,
        )


def _request(api: client.ApiClient, namespace: str, spec: dict[str, Any]) -> str | None:
    """None when the token was issued, else the API server's message."""
    core = client.CoreV1Api(api)
    try:
        core.create_namespaced_service_account_token("uploader", namespace, {"spec": spec})
    except client.ApiException as err:
        return f"{err.status}: {err.body}"
    return None


def test_the_policy_limits_the_operators_token_requests_on_the_api_server(
    cluster: Cluster, namespace: str, policy: str, tmp_path: Path
) -> None:
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "uploader"}})
    kubeconfig = cluster.service_account_kubeconfig(
        namespace, policy, rules=[TOKEN_RULE, GET_RULE], out_dir=tmp_path
    )
    operator = cluster.api_client(str(kubeconfig))
    apiserver_audience = {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 600}
    deadline = time.monotonic() + 30
    while _request(operator, namespace, apiserver_audience) is None:  # the policy syncs
        assert time.monotonic() < deadline, "the policy never refused the API server's audience"
        time.sleep(0.5)

    refused = {
        "api-server-audience": apiserver_audience,
        "default-audience": {"expirationSeconds": 600},
        "one-bad-among-good": {
            "audiences": ["sts.amazonaws.com", "vault"],
            "expirationSeconds": 600,
        },
        "too-long": {"audiences": ["sts.amazonaws.com"], "expirationSeconds": 7200},
    }
    for case, spec in refused.items():
        message = _request(operator, namespace, spec)
        assert message is not None, f"{case}: the operator got a token"
        assert message.startswith("403") and "destination operator may request" in message, case
    allowed = {
        "aws": {"audiences": ["sts.amazonaws.com"], "expirationSeconds": 600},
        "azure": {"audiences": ["api://AzureADTokenExchange"], "expirationSeconds": 3600},
        "google": {
            "audiences": [
                "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k"
            ],
            "expirationSeconds": 600,
        },
    }
    for case, spec in allowed.items():
        assert _request(operator, namespace, spec) is None, case
    # Anyone else (here the admin) is not the operator: the policy does not apply.
    assert _request(cluster.api_client(), namespace, apiserver_audience) is None


def test_aws_role_arn_gives_the_pod_a_projected_token_for_sts(
    cluster: Cluster, namespace: str
) -> None:
    role = "arn:aws:iam::123456789012:role/destination-operator"
    rendered = _render(cluster, namespace, aws={"roleArn": role})
    pod = next(item for item in rendered if item["kind"] == "Deployment")["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    token_file = env["AWS_WEB_IDENTITY_TOKEN_FILE"]
    assert env["AWS_ROLE_ARN"] == role
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "aws-iam-token"]
    assert token_file == f"{mount['mountPath']}/token" and mount["readOnly"] is True
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == "aws-iam-token"]
    (source,) = volume["projected"]["sources"]
    assert source["serviceAccountToken"]["audience"] == "sts.amazonaws.com"
    assert source["serviceAccountToken"]["path"] == "token"
    plain = _render(cluster, namespace)
    pod = next(item for item in plain if item["kind"] == "Deployment")["spec"]["template"]
    assert "aws-iam-token" not in str(pod) and "AWS_ROLE_ARN" not in str(pod)
    with pytest.raises(chart.ChartError, match="roleArn"):
        _render(cluster, namespace, aws={"roleArn": "arn:aws:iam::123:role/x"})
