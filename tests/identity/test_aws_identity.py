"""AWS workload identity end to end, with the control plane as the OIDC issuer.

The API server mints the ServiceAccount tokens (TokenRequest); the STS front
(tests/identity/awssts.py) verifies them against the API server's own JWKS and the
role's trust policy, as AWS does, and has moto issue the role's credentials, which
moto's S3 checks (IAM enforced). The operator runs as a process of its own under the
chart's RBAC rendered with `objectLevelIdentity` (the session's operator, which
leaves identity off, is stopped meanwhile), its STS and S3 endpoints set through
operator settings only.

`OBSERVED` collects the (case, reason) table; the test prints it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from awssts import AwsStsFront
from dst import apply, get, wait_for
from kubernetes import client
from oidc import ClusterIssuer
from operator_fixtures import OperatorProcess, session_operator_stopped
from test_rbac_grants_used import _decision, grant_of, operator_requests

import chart
from destination_operator.errors import (
    IdentityExchangeFailedError,
    ServiceAccountNotFoundError,
    TokenRequestForbiddenError,
)
from destination_operator.identity.aws import AUDIENCE, ROLE_ANNOTATION, Aws
from destination_operator.kube import client as kube_client
from destination_operator.kube.serviceaccounts import read_service_account, request_token
from destination_operator.settings import OperatorSettings
from harness import Cluster
from s3server import S3Server

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("destination_crd")]


@pytest.fixture(scope="module")
def front(cluster: Cluster, s3: S3Server) -> Iterator[AwsStsFront]:
    issuer = ClusterIssuer.of_control_plane(cluster.server, cluster.plane.pki)
    admin = s3.users["admin"]
    server = AwsStsFront(issuer, s3.endpoint, (admin.access_key_id, admin.secret_access_key))
    try:
        yield server
    finally:
        server.close()


def _service_account(cluster: Cluster, namespace: str, name: str, role: str | None) -> None:
    annotations = {ROLE_ANNOTATION: role} if role else {}
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespaced_service_account(
        namespace, {"metadata": {"name": name, "annotations": annotations}}
    )


def _destination(name: str, bucket: str, credentials: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "destinations.io/v1alpha1",
        "kind": "Destination",
        "metadata": {"name": name},
        "spec": {
            "type": "AmazonS3",
            "amazonS3": {"bucket": bucket, "region": "us-east-1"},
            "pathPrefix": f"{name}/",
            "credentials": credentials,
            "verification": {"timeout": "15s"},
        },
    }


@pytest.fixture
def identity_operator(
    cluster: Cluster,
    namespace: str,
    s3: S3Server,
    front: AwsStsFront,
    tmp_path: Path,
) -> Iterator[OperatorProcess]:
    """An operator with object-level identity on, watching `namespace` only, under the RBAC
    the chart renders for that (its Role there and its ClusterRole)."""
    text = chart.helm_template(
        cluster.bin_dir / "helm",
        namespace=namespace,
        values={"objectLevelIdentity": True, "namespaces": [namespace]},
    )
    rendered = [doc for doc in yaml.safe_load_all(text) if doc]
    (role,) = [  # the watched namespace's Role (the other is the Lease's, in the release's)
        item
        for item in rendered
        if item["kind"] == "Role"
        and item["metadata"]["namespace"] == namespace
        and not item["metadata"]["name"].endswith("-leader-election")
    ]
    (cluster_role,) = [item for item in rendered if item["kind"] == "ClusterRole"]
    kubeconfig = cluster.service_account_kubeconfig(
        namespace,
        "identity-operator",
        rules=role["rules"],
        cluster_rules=cluster_role["rules"],
        out_dir=tmp_path,
    )
    env = {
        "DESTINATION_OPERATOR_NAMESPACES": f'["{namespace}"]',
        "DESTINATION_OPERATOR_OBJECT_LEVEL_IDENTITY": "true",
        "DESTINATION_OPERATOR_AWS_STS_ENDPOINT": front.endpoint,
        "DESTINATION_OPERATOR_AWS_S3_ENDPOINT": s3.endpoint,
    }
    with session_operator_stopped():
        process = OperatorProcess(kubeconfig, tmp_path / "identity-operator.log", env=env)
        process.start()
        try:
            yield process
        finally:
            process.stop()
            rbac = client.RbacAuthorizationV1Api(cluster.api_client())
            name = f"{namespace}-identity-operator"
            for delete in (rbac.delete_cluster_role_binding, rbac.delete_cluster_role):
                with contextlib.suppress(client.ApiException):
                    delete(name)


def test_the_aws_identity_table_through_the_operator(
    cluster: Cluster,
    namespace: str,
    s3: S3Server,
    front: AwsStsFront,
    identity_operator: OperatorProcess,
) -> None:
    bucket = s3.buckets[0]
    subject = f"system:serviceaccount:{namespace}:{{}}"
    uploader = front.create_role(
        f"uploader-{namespace}"[:64],
        subject=subject.format("uploader"),
        allow=["s3:PutObject", "s3:DeleteObject"],
    )
    reader = front.create_role(
        f"reader-{namespace}"[:64],
        subject=subject.format("reader"),
        allow=["s3:GetObject"],
        deny=["s3:PutObject"],
    )
    elsewhere = front.create_role(
        f"elsewhere-{namespace}"[:64],
        subject="system:serviceaccount:another-namespace:from-b",
        allow=["s3:PutObject", "s3:DeleteObject"],
    )
    _service_account(cluster, namespace, "uploader", uploader)
    _service_account(cluster, namespace, "reader", reader)
    _service_account(cluster, namespace, "intruder", uploader)  # trusted: uploader only
    _service_account(cluster, namespace, "from-b", elsewhere)  # trusted: another namespace's
    _service_account(cluster, namespace, "plain", None)
    cases = {
        "object-level": ({"serviceAccountName": "uploader"}, "True", "ProbeSucceeded"),
        "role-trusts-another-subject": (
            {"serviceAccountName": "intruder"},
            "False",
            "IdentityExchangeFailed",
        ),
        "role-trusts-another-namespace": (
            {"serviceAccountName": "from-b"},
            "False",
            "IdentityExchangeFailed",
        ),
        "role-policy-refuses-the-write": (
            {"serviceAccountName": "reader"},
            "False",
            "AccessDenied",
        ),
        "service-account-missing": (
            {"serviceAccountName": "ghost"},
            "False",
            "ServiceAccountNotFound",
        ),
        "annotation-missing": (
            {"serviceAccountName": "plain"},
            "False",
            "IdentityNotConfigured",
        ),
        "operator-identity-setting-off": (
            {"operatorIdentity": {}},
            "False",
            "IdentityNotAllowed",
        ),
    }
    apply(
        cluster,
        namespace,
        *(_destination(case, bucket, credentials) for case, (credentials, _, _) in cases.items()),
    )
    observed: dict[str, tuple[str, str]] = {}
    for case, (_, status, reason) in cases.items():
        body = wait_for(cluster, namespace, case, "Verified", status, reason=reason, timeout=90)
        verified = next(c for c in body["status"]["conditions"] if c["type"] == "Verified")
        observed[case] = (verified["reason"], verified["message"][:160])
    print("\ncase | reason | message")
    for case, (reason, message) in observed.items():
        print(f"{case} | {reason} | {message}")
    assert "AccessDenied" in observed["role-trusts-another-subject"][1]
    assert "AccessDenied" in observed["role-trusts-another-namespace"][1]
    assert "eks.amazonaws.com/role-arn" in observed["annotation-missing"][1]
    assert front.issued_for[elsewhere] == 0
    assert front.issued_for[uploader] >= 1  # the intruder's refusals issued nothing

    # Cached: the operator re-verifies every 2 s here; N probes cost one exchange.
    issued_before = front.issued_for[uploader]
    puts_before = _puts(s3, bucket, "object-level/")
    time.sleep(8)
    probes = _puts(s3, bucket, "object-level/") - puts_before
    assert probes >= 2, f"only {probes} probes in 8 s"
    assert front.issued_for[uploader] == issued_before == 1, (probes, front.issued_for)
    print(f"token exchanges for {probes + puts_before} probes: {front.issued_for[uploader]}")
    assert get(cluster, namespace, "object-level")["status"]["credentialsFingerprint"]

    # The audit log: the two grants objectLevelIdentity adds were used, and RBAC refused none
    # of this operator's requests (the RBAC-used audit of tests/cluster, for these grants).
    user = f"system:serviceaccount:{namespace}:identity-operator"
    requests = operator_requests(cluster.plane.audit_log, user)
    used = {grant_of(entry) for entry in requests}
    assert ("", "serviceaccounts", "get") in used
    assert ("", "serviceaccounts/token", "create") in used
    refused = [grant_of(e) for e in requests if _decision(e) == "forbid"]
    assert not refused, refused
    # Neither the ServiceAccount tokens nor the issued secrets are in the operator's log (the
    # namespace fixture looks for them in the statuses and Events).
    log = identity_operator.text()
    assert front.secrets and not [value for value in front.secrets if value in log]


def _puts(s3: S3Server, bucket: str, prefix: str) -> int:
    return sum(
        1
        for line in s3.requests()
        if f" PUT /{bucket}/{prefix}" in line and line.rstrip().endswith(" 200")
    )


def test_the_exchange_with_the_api_servers_own_tokens(
    cluster: Cluster, namespace: str, front: AwsStsFront, tmp_path: Path
) -> None:
    """The operator's calls (read the ServiceAccount, TokenRequest, exchange) with the API
    server's tokens: right audience, wrong audience, and RBAC without the token grant."""
    role = front.create_role(
        f"direct-{namespace}"[:64],
        subject=f"system:serviceaccount:{namespace}:direct",
        allow=["s3:PutObject"],
    )
    _service_account(cluster, namespace, "direct", role)
    get_only = [{"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get"]}]
    full = [
        *get_only,
        {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
    ]
    with_grant = cluster.service_account_kubeconfig(namespace, "op", rules=full, out_dir=tmp_path)
    without = cluster.service_account_kubeconfig(namespace, "op2", rules=get_only, out_dir=tmp_path)
    aws = Aws(OperatorSettings(aws_sts_endpoint=front.endpoint), environ={})
    try:
        kube_client.use(str(with_grant))
        account = read_service_account(namespace, "direct")
        target = aws.target(account)
        token = request_token(account, AUDIENCE, 600)
        assert token.expires_at - time.time() > 500
        assert aws.exchange(token.token, target, 10).access_key_id.startswith("ASIA")
        azure_token = request_token(account, "api://AzureADTokenExchange", 600)
        with pytest.raises(IdentityExchangeFailedError, match="InvalidIdentityToken"):
            aws.exchange(azure_token.token, target, 10)
        with pytest.raises(ServiceAccountNotFoundError):
            read_service_account(namespace, "ghost")

        kube_client.use(str(without))
        account = read_service_account(namespace, "direct")
        with pytest.raises(TokenRequestForbiddenError) as refused:
            request_token(account, AUDIENCE, 600)
        message = refused.value.message
        assert "create on serviceaccounts/token" in message and namespace in message
    finally:
        kube_client.use()
