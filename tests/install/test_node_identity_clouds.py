"""The operator's own Google and Azure identities on the real node: the pod's kubelet-projected
tokens, exchanged at verifying token services, probing storage behind verifying fronts, with
no Secret at all.

The chart is installed with `operatorIdentity` on, `gcp.ownIdentity` (and the service account
it impersonates) and `azure.clientId`, so the kubelet projects two ServiceAccount tokens into
the pod: one with the workload identity provider's audience, one with Entra's. The pod reaches
the test process's servers through the node's gateway, at the operator-level endpoints of the
chart's `gcp` and `azure` values:

- Google: the STS and IAM Credentials of tests/identity/googlests.py (the token's signature
  against the API server's JWKS, issuer, audience, expiry; the federated principal must hold
  roles/iam.workloadIdentityUser on the service account), then fake-gcs-server behind its
  checking front (hack/gcsserver.py --introspect: the token is live and the service
  account may write), at `gcp.storageEndpoint`;
- Azure: the Entra ID of tests/identity/entra.py over HTTPS (the federated credential names
  the operator's ServiceAccount as its subject), then Azurite behind tests/identity/
  blobfront.py (Entra's signature, the tenant, the data role), at `azure.blobEndpoint`; the
  pod trusts their certificate through `identityCaConfigMap`.

`objectLevelIdentity` stays off: the operator cannot request a token itself, so the tokens the
services saw are the kubelet's, bound to the operator's pod.
"""

from __future__ import annotations

import secrets
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from blobfront import CONTRIBUTOR, Account, BlobFront
from entra import EntraServer, Federated
from googlests import GoogleServer, principal
from node_fixtures import helm_install, pod_names, uninstall
from oidc import Claims, ClusterIssuer

from azurite import Azurite
from certs import issue
from cluster.dst import apply, wait_for
from gcsserver import GcsServer
from harness import Cluster
from node import Node

pytestmark = pytest.mark.install

ACCOUNT = "destination-operator"  # the operator's ServiceAccount
POOL = "cluster-pool"
WRITER = "writer@project.iam.gserviceaccount.com"
TENANT, CLIENT = str(uuid.uuid4()), str(uuid.uuid4())
GOOGLE_AUDIENCE_PREFIX = "https://iam.googleapis.com/"
ENTRA_AUDIENCE = "api://AzureADTokenExchange"


class Recording(ClusterIssuer):
    """The cluster's issuer as the token services trust it, keeping each token it verified
    and its claims (the services themselves keep no token)."""

    def __init__(self, issuer: str, fetch: Any) -> None:
        super().__init__(issuer, fetch)
        self.verified: list[tuple[str, Mapping[str, Any]]] = []

    def verify(self, token: str, **checks: Any) -> Claims:
        claims = super().verify(token, **checks)
        self.verified.append((token, dict(claims.raw)))
        return claims


def certificate(folder: Path, gateway: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, localhost and the node's gateway (where the
    pod connects): (cert, key) files; the certificate is its own trust anchor."""
    hosts = ["localhost", "127.0.0.1", gateway]
    return issue("destination-operator tests", hosts=hosts, ca=True).write(folder)


@dataclass
class Fronts:
    """The token services and storage fronts, and the chart values that point the pod at
    them (through the node's gateway)."""

    issuer: Recording
    google: GoogleServer
    gcs: GcsServer
    entra: EntraServer
    account: Account  # the blob front's: Entra's key, the tenant, the roles, the records
    ca_file: Path
    values: dict[str, Any]

    def counts(self) -> dict[str, int]:
        """Requests so far at each service, and the tokens the issuer verified."""
        google = self.google.google
        return {
            "sts": google.count("/v1/token"),
            "generateAccessToken": google.count(":generateAccessToken"),
            "entra": self.entra.entra.count(),
            "gcs": len(self.gcs.requests()),
            "blob": len(self.account.records),
            "verified": len(self.issuer.verified),
        }


@pytest.fixture(scope="module")
def fronts(
    cluster: Cluster, node: Node, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fronts]:
    folder = tmp_path_factory.mktemp("clouds")
    gateway = node.gateway
    tls = certificate(folder / "tls", gateway)
    issuer = Recording.of_control_plane(cluster.server, cluster.plane.pki)
    assert isinstance(issuer, Recording)

    def exposed(url: str) -> str:  # a loopback URL as the pod reaches it
        parts = urllib.parse.urlsplit(url)
        assert parts.port is not None
        if parts.port not in ports:
            ports[parts.port] = node.expose(parts.port)
        host, port = ports[parts.port]
        return parts._replace(netloc=f"{host}:{port}").geturl()

    ports: dict[int, tuple[str, int]] = {}

    entra_server = EntraServer(folder / "entra", tls=tls)  # the pod connects to the gateway
    with (
        GoogleServer() as google,
        GcsServer(folder / "gcs", introspect=google.introspection_url) as gcs,
        entra_server,
        Azurite(folder / "azurite", oauth_tls=tls) as azurite,
        BlobFront(
            Account(entra_server.entra.key.public_key(), TENANT, {CLIENT: CONTRIBUTOR}),
            azurite,
            *tls,
        ) as blob,
    ):
        provider = google.google.add_provider(POOL, "kube", issuer)
        google.google.grant(WRITER, "storage.objects.create", "storage.objects.delete")
        # Entra's discovery names its token endpoint by the server's URL: the pod's one
        entra_server.url = entra_server.authority = exposed(entra_server.url)
        blob_endpoint = exposed(blob.endpoint).rsplit("/", 1)[0] + "/{account}"
        values = {
            "allowPrivateEndpoints": True,  # the storage fronts are on the node's gateway
            "serviceAccount": {"name": ACCOUNT},
            "crds": {"install": False},  # the session's CRD, shared with the other tests
            "gcp": {
                "stsEndpoint": exposed(google.token_url),
                "iamcredentialsEndpoint": exposed(google.url),
                "storageEndpoint": exposed(gcs.endpoint),
                "workloadIdentityProvider": provider.removeprefix("//iam.googleapis.com/"),
                "ownIdentity": True,
                "serviceAccount": WRITER,
            },
            "azure": {
                "entraEndpoint": entra_server.authority,
                "blobEndpoint": blob_endpoint,
                "tenantId": TENANT,
                "clientId": CLIENT,
            },
            "identityCaConfigMap": "identity-ca",
        }
        yield Fronts(issuer, google, gcs, entra_server, blob.account, tls[0], values)


def trust(fronts: Fronts, namespace: str) -> str:
    """Let the operator's ServiceAccount in `namespace` in: the Google service account's
    workloadIdentityUser binding and Entra's federated credential; its subject."""
    subject = f"system:serviceaccount:{namespace}:{ACCOUNT}"
    fronts.google.google.bind_workload_identity_user(WRITER, principal(POOL, subject))
    fronts.entra.entra.add_application(TENANT, CLIENT, Federated(fronts.issuer, subject))
    return subject


def install(cluster: Cluster, image: str, fronts: Fronts, namespace: str, **more: Any) -> str:
    """The chart in `namespace` (its CA ConfigMap first), pointed at the fronts; the pod."""
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl(
        "create",
        "configmap",
        "identity-ca",
        "-n",
        namespace,
        f"--from-file=ca.crt={fronts.ca_file}",
    )
    helm_install(cluster, namespace, namespace, image, fronts.values | more)
    (pod,) = pod_names(cluster, namespace)
    return pod


def destinations(team: str) -> list[dict[str, Any]]:
    # interval 0s: verified once; timeout 15s: the first exchange and the probe together
    common = {
        "credentials": {"operatorIdentity": {}},
        "verification": {"interval": "0s", "timeout": "15s"},
    }
    blocks = {
        "google": ("GoogleCloudStorage", "googleCloudStorage", {"bucket": "destinations"}),
        "azure": (
            "AzureBlobStorage",
            "azureBlobStorage",
            {"storageAccountName": "probeaccount", "containerName": "destinations"},
        ),
    }
    return [
        {
            "apiVersion": "destinations.io/v1alpha1",
            "kind": "Destination",
            "metadata": {"name": f"own-{name}"},
            "spec": {"type": kind, member: block, "pathPrefix": f"{team}/", **common},
        }
        for name, (kind, member, block) in blocks.items()
    ]


def test_the_operator_pods_own_tokens_verify_google_and_azure_destinations(
    cluster: Cluster, destination_crd: str, operator_image: str, fronts: Fronts
) -> None:
    suffix = secrets.token_hex(3)
    namespace, team = f"own-clouds-{suffix}", f"own-clouds-team-{suffix}"
    subject = trust(fronts, namespace)
    before = fronts.counts()
    try:
        pod = install(cluster, operator_image, fronts, namespace, operatorIdentity=True)
        cluster.kubectl("create", "namespace", team)
        started = time.monotonic()
        for body in destinations(team):
            apply(cluster, team, body)
        for name in ("own-google", "own-azure"):
            found = wait_for(
                cluster, team, name, "Verified", "True", reason="ProbeSucceeded", timeout=120
            )
            assert found["status"]["credentialsFingerprint"]
            print(f"{name}: Verified=True {time.monotonic() - started:.1f} s after the apply")

        # One exchange per cloud: STS, the impersonation, Entra; each for a projected token
        # of the operator's ServiceAccount, with that cloud's audience, bound to its pod.
        after = fronts.counts()
        exchanges = {
            key: after[key] - before[key] for key in ("sts", "generateAccessToken", "entra")
        }
        assert exchanges == {"sts": 1, "generateAccessToken": 1, "entra": 1}, exchanges
        print(f"exchanges: {exchanges}")
        verified = fronts.issuer.verified[before["verified"] :]
        assert len(verified) == 2, [claims.get("aud") for _, claims in verified]
        audiences = set()
        for _, claims in verified:
            assert claims["sub"] == subject
            assert claims["kubernetes.io"]["pod"]["name"] == pod
            (audience,) = [claims["aud"]] if isinstance(claims["aud"], str) else claims["aud"]
            audiences.add(audience)
            print(f"the projected token: sub {claims['sub']}, aud {audience}, pod {pod}")
        provider = fronts.values["gcp"]["workloadIdentityProvider"]
        assert audiences == {GOOGLE_AUDIENCE_PREFIX + provider, ENTRA_AUDIENCE}

        # The probes wrote with what was issued: the service account at the GCS front, the
        # Entra application at the blob front (Put, then Delete).
        logged = fronts.gcs.requests()[before["gcs"] :]  # time, method, path, whose, status
        assert [line.split()[1::2] for line in logged] == [["POST", WRITER], ["DELETE", WRITER]]
        assert all(line.endswith((" 200", " 204")) for line in logged), logged
        made = [(r.method, r.who, r.status) for r in fronts.account.records[before["blob"] :]]
        assert made == [("PUT", CLIENT, 201), ("DELETE", CLIENT, 202)], made
        listed = cluster.kubectl("get", "secrets", "-n", team, "-o", "name").stdout
        assert listed.strip() == ""

        # Nothing issued, nor the projected tokens, is in the operator's log: no JWT at all
        # (the tokens and Entra's answer are JWTs), no Google access token.
        log = cluster.kubectl("logs", "-n", namespace, pod).stdout
        assert "eyJ" not in log and "ya29." not in log
        issued = list(fronts.google.google.tokens)
        assert issued and not [t for t in issued if t in log]
        assert not [token for token, _ in verified if token in log]
    finally:
        uninstall(cluster, namespace, namespace, team)


def test_with_operator_identity_off_the_pod_refuses_before_any_exchange(
    cluster: Cluster, destination_crd: str, operator_image: str, fronts: Fronts
) -> None:
    suffix = secrets.token_hex(3)
    namespace, team = f"no-own-{suffix}", f"no-own-team-{suffix}"
    trust(fronts, namespace)  # the clouds would take its tokens: the operator must not ask
    before = fronts.counts()
    try:
        install(cluster, operator_image, fronts, namespace, operatorIdentity=False)
        cluster.kubectl("create", "namespace", team)
        for body in destinations(team):
            apply(cluster, team, body)
        for name in ("own-google", "own-azure"):
            found = wait_for(
                cluster, team, name, "Verified", "False", reason="IdentityNotAllowed", timeout=120
            )
            (verified,) = [c for c in found["status"]["conditions"] if c["type"] == "Verified"]
            assert "operatorIdentity" in verified["message"], verified
        assert fronts.counts() == before  # no token presented, nothing probed
    finally:
        uninstall(cluster, namespace, namespace, team)
