"""The test token services' check of a ServiceAccount token, against the control plane's
real issuer: a token the API server minted passes; each tampering fails on its own check."""

from __future__ import annotations

import base64
import json
import time

import pytest
from kubernetes import client
from oidc import ClusterIssuer, TokenRefused

from harness import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("destination_crd")]


def _token(cluster: Cluster, namespace: str, name: str, audience: str, seconds: int = 600) -> str:
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    request = {"spec": {"audiences": [audience], "expirationSeconds": seconds}}
    return str(core.create_namespaced_service_account_token(name, namespace, request).status.token)


def _with_payload(token: str, **changes: object) -> str:
    head, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims.update(changes)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{signature}"


def test_a_minted_token_verifies_and_each_check_refuses(cluster: Cluster, namespace: str) -> None:
    issuer = ClusterIssuer.of_control_plane(cluster.server, cluster.plane.pki)
    token = _token(cluster, namespace, "uploader", "sts.amazonaws.com")
    subject = f"system:serviceaccount:{namespace}:uploader"

    claims = issuer.verify(token, audience="sts.amazonaws.com", subject=subject)
    assert claims.namespace_and_name == (namespace, "uploader")
    assert claims.issuer == cluster.server

    cases = {
        "audience": lambda: issuer.verify(token, audience="api://AzureADTokenExchange"),
        "subject": lambda: issuer.verify(
            token, audience="sts.amazonaws.com", subject=f"system:serviceaccount:{namespace}:other"
        ),
        "expired": lambda: issuer.verify(
            token, audience="sts.amazonaws.com", now=time.time() + 3600
        ),
        "signature": lambda: issuer.verify(
            _with_payload(token, sub="system:serviceaccount:kube-system:admin"),
            audience="sts.amazonaws.com",
        ),
        "malformed": lambda: issuer.verify("not-a-token", audience="sts.amazonaws.com"),
    }
    for reason, check in cases.items():
        with pytest.raises(TokenRefused) as refused:
            check()
        assert refused.value.reason == reason
    other = ClusterIssuer("https://issuer.example", issuer._fetch)
    other._keys = issuer.keys()  # the same keys, trusted under another issuer's name
    with pytest.raises(TokenRefused) as refused:
        other.verify(token, audience="sts.amazonaws.com")
    assert refused.value.reason == "issuer"
