"""The operator's own AWS identity on the real node: the pod's kubelet-projected token,
exchanged at a verifying STS, with no Secret at all.

The chart is installed with `operatorIdentity` on and `aws.roleArn` set, so the kubelet
projects a ServiceAccount token with the audience `sts.amazonaws.com` into the pod and the
operator reads it (`AWS_WEB_IDENTITY_TOKEN_FILE`). The STS front (tests/identity/awssts.py),
on the host and reached by the pod through the node's gateway (`aws.stsEndpoint`), checks the
token as AWS does: RS256 signature against the API server's JWKS, issuer, audience, expiry,
and the role's trust policy, which names the operator's ServiceAccount as its only subject.
moto's STS then issues the role's credentials, which moto's S3 (IAM enforced, `aws.s3Endpoint`)
checks, policy included. `objectLevelIdentity` stays off, so the operator cannot request a
token itself: the one the STS saw is the kubelet's, bound to the operator's pod.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from awssts import AUDIENCE, AwsStsFront
from node_fixtures import Storage, helm_install, pod_names, uninstall
from oidc import ClusterIssuer

from cluster.dst import apply, wait_for
from harness import Cluster
from node import Node

pytestmark = pytest.mark.install


@pytest.fixture(scope="module")
def sts(cluster: Cluster, node: Node, storage: Storage) -> Iterator[tuple[AwsStsFront, str]]:
    """The verifying STS front over the storage's moto, and its URL as pods reach it."""
    issuer = ClusterIssuer.of_control_plane(cluster.server, cluster.plane.pki)
    admin = storage.server.users["admin"]
    front = AwsStsFront(
        issuer, storage.server.endpoint, (admin.access_key_id, admin.secret_access_key)
    )
    try:
        port = int(front.endpoint.rsplit(":", 1)[1])
        host, port = node.expose(port)
        yield front, f"http://{host}:{port}"
    finally:
        front.close()


def _destination(name: str, bucket: str) -> dict[str, Any]:
    # interval 0s: verified once; timeout 15s: the first exchange and the probe together
    return {
        "apiVersion": "destinations.io/v1alpha1",
        "kind": "Destination",
        "metadata": {"name": name},
        "spec": {
            "type": "AmazonS3",
            "amazonS3": {"bucket": bucket, "region": "us-east-1"},
            "pathPrefix": f"{name}/",
            "credentials": {"operatorIdentity": {}},
            "verification": {"interval": "0s", "timeout": "15s"},
        },
    }


def test_the_operator_pods_own_token_verifies_an_amazon_s3_destination(
    cluster: Cluster,
    destination_crd: str,
    node: Node,
    operator_image: str,
    storage: Storage,
    sts: tuple[AwsStsFront, str],
) -> None:
    front, sts_endpoint = sts
    suffix = secrets.token_hex(3)
    release, namespace, team = f"own-{suffix}", f"own-operator-{suffix}", f"own-team-{suffix}"
    account = "destination-operator"
    subject = f"system:serviceaccount:{namespace}:{account}"
    bucket = storage.server.buckets[0]
    role = front.create_role(
        f"operator-{suffix}", subject=subject, allow=["s3:PutObject", "s3:DeleteObject"]
    )
    values = {
        "allowPrivateEndpoints": True,  # the S3 server is on the node's gateway
        "serviceAccount": {"name": account},
        "operatorIdentity": True,
        "aws": {"roleArn": role, "stsEndpoint": sts_endpoint, "s3Endpoint": storage.endpoint},
        "crds": {"install": False},  # the session's CRD, shared with the other tests
    }
    try:
        helm_install(cluster, release, namespace, operator_image, values)
        (pod,) = pod_names(cluster, namespace)
        cluster.kubectl("create", "namespace", team)
        apply(cluster, team, _destination("own-identity", bucket))
        started = time.monotonic()
        body = wait_for(
            cluster, team, "own-identity", "Verified", "True", reason="ProbeSucceeded", timeout=120
        )
        print(f"Verified=True {time.monotonic() - started:.1f} s after the apply")

        # The STS issued credentials once, for the operator's role, to the token the kubelet
        # projected into the operator's pod: its ServiceAccount, STS's audience, bound to it.
        assert front.issued_for[role] == 1, (front.issued_for, front.refusals)
        (claims,) = front.claims
        assert claims["sub"] == subject
        assert AUDIENCE in ([claims["aud"]] if isinstance(claims["aud"], str) else claims["aud"])
        assert claims["iss"] == front.issuer.issuer
        bound = claims["kubernetes.io"]
        assert bound["namespace"] == namespace and bound["serviceaccount"]["name"] == account
        assert bound["pod"]["name"] == pod, bound
        lifetime = claims["exp"] - claims["iat"]
        assert lifetime == 86400  # the chart's volume's expirationSeconds, not a TokenRequest's
        print(f"the projected token: sub {claims['sub']}, pod {pod}, lifetime {lifetime} s")

        # The probe wrote with the role's temporary credentials, and no Secret was involved.
        keys = [  # a line: time, method, path, access key id, status
            line.split()[3]
            for line in storage.server.requests()
            if f" PUT /{bucket}/own-identity/" in line and line.rstrip().endswith(" 200")
        ]
        assert keys and all(key.startswith("ASIA") for key in keys), keys
        assert body["status"]["credentialsFingerprint"]
        listed = json.loads(cluster.kubectl("get", "secrets", "-n", team, "-o", "json").stdout)
        assert listed["items"] == []
        # Nothing the STS issued, nor the token, is in the operator's log.
        log = cluster.kubectl("logs", "-n", namespace, pod).stdout
        assert front.secrets and not [value for value in front.secrets if value in log]
    finally:
        uninstall(cluster, release, namespace, team)
