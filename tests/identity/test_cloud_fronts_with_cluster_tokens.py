"""The Google and Azure exchanges with the control plane's own ServiceAccount tokens: the
TokenRequest API mints them for each cloud's audience, the local token services trust the
API server as an OIDC issuer (its discovery document and JWKS), and verify them as Google's
STS and Entra ID do. The same checks against tokens of the test process's issuer, case by
case, are in test_google_identity.py and test_azure_identity.py."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from entra import EntraServer, Federated
from googlests import GoogleServer, principal
from kubernetes import client
from oidc import ClusterIssuer

from destination_operator.providers import azure_identity, google_identity
from harness import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("destination_crd")]

POOL = "cluster-pool"
WRITER = "writer@project.iam.gserviceaccount.com"


def _token(cluster: Cluster, namespace: str, name: str, audience: str) -> str:
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    request = {"spec": {"audiences": [audience], "expirationSeconds": 600}}
    return str(core.create_namespaced_service_account_token(name, namespace, request).status.token)


def test_google_sts_and_iamcredentials_take_the_api_servers_token(
    cluster: Cluster, namespace: str
) -> None:
    issuer = ClusterIssuer.of_control_plane(cluster.server, cluster.plane.pki)
    with GoogleServer() as server:
        google = server.google
        provider = google.add_provider(POOL, "kube", issuer)
        subject = f"system:serviceaccount:{namespace}:uploader"
        google.bind_workload_identity_user(WRITER, principal(POOL, subject))
        annotations = {
            google_identity.PROVIDER_ANNOTATION: provider.removeprefix("//iam.googleapis.com/"),
            google_identity.SERVICE_ACCOUNT_ANNOTATION: WRITER,
        }
        identity = google_identity.google_identity(annotations, "ServiceAccount 'uploader'")

        def exchange(token: str) -> object:
            return google_identity.exchange(
                token, identity, timeout_seconds=10, sts_url=server.token_url,
                iamcredentials_url=server.url,
            )  # fmt: skip

        issued = exchange(_token(cluster, namespace, "uploader", identity.token_audience))
        assert google.introspect(issued.token)["sub"] == WRITER  # type: ignore[attr-defined]
        other = _token(cluster, namespace, "other", identity.token_audience)
        with pytest.raises(google_identity.FederationRefused) as refused:
            exchange(other)  # a principal without roles/iam.workloadIdentityUser on WRITER
        assert refused.value.code == "PERMISSION_DENIED"
        wrong = _token(cluster, namespace, "aws-audience", "sts.amazonaws.com")
        with pytest.raises(google_identity.FederationRefused) as refused:
            exchange(wrong)
        assert (refused.value.step, refused.value.code) == ("sts", "invalid_grant")


def test_entra_takes_the_api_servers_token_for_its_federated_subject_only(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    issuer = ClusterIssuer.of_control_plane(cluster.server, cluster.plane.pki)
    tenant, app = str(uuid.uuid4()), str(uuid.uuid4())
    with EntraServer(tmp_path) as server:
        subject = f"system:serviceaccount:{namespace}:uploader"
        server.entra.add_application(tenant, app, Federated(issuer, subject))
        identity = azure_identity.AzureIdentity(tenant, app)

        def exchange(token: str) -> object:
            return azure_identity.exchange(
                token, identity, timeout_seconds=10, authority_host=server.authority,
                ca_bundle=str(server.ca_file),
            )  # fmt: skip

        issued = exchange(_token(cluster, namespace, "uploader", azure_identity.AUDIENCE))
        assert issued.token  # type: ignore[attr-defined]
        other = _token(cluster, namespace, "other", azure_identity.AUDIENCE)
        with pytest.raises(azure_identity.AssertionRefused) as refused:
            exchange(other)
        assert refused.value.aadsts == "AADSTS70021"
