"""Google and Azure through the operator's own path: `identity.resolve.Identities` (the
settings' policy, the ServiceAccount's annotations, its token, the exchange, the cache) with
`identity.google.Google` and `identity.azure.Azure` at the verifying fronts
(tests/identity/googlests.py, tests/identity/entra.py), then `probe.verify.verify` with what
they issued against fake-gcs-server's checking front and Azurite with OAuth on behind its
verifying front (tests/identity/blobfront.py).

The ServiceAccounts and their TokenRequests are the test's (`Cluster` below mints each
token with the local issuer for the audience the cloud asks); the same exchanges with the
API server's own tokens are in test_cloud_fronts_with_cluster_tokens.py."""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from blobfront import CONTRIBUTOR, Account, BlobFront
from blobfront import READER as READER_ROLE
from entra import EntraServer, Federated
from googlests import GoogleServer, principal
from identityprobe import probe, spec
from localissuer import LocalIssuer

from azurite import Azurite
from destination_operator.api.spec import DestinationType
from destination_operator.api.status import Reason
from destination_operator.errors import (
    IdentityExchangeFailedError,
    IdentityNotAllowedError,
    IdentityNotConfiguredError,
)
from destination_operator.identity.azure import Azure
from destination_operator.identity.google import Google
from destination_operator.identity.resolve import Identities
from destination_operator.kube.serviceaccounts import IssuedToken, ServiceAccountView
from destination_operator.providers.azure import AzureBlobStorageProvider
from destination_operator.providers.gcs import GoogleCloudStorageProvider
from destination_operator.providers.registry import Registry
from destination_operator.settings import OperatorSettings
from gcsserver import GcsServer

NS = "team-a"
POOL = "cluster-pool"
WRITER = "writer@project.iam.gserviceaccount.com"
READER = "reader@project.iam.gserviceaccount.com"
TENANT, CLIENT, READER_CLIENT = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC)
ANNOTATED = {
    "iam.gke.io/gcp-service-account": WRITER,
    "azure.workload.identity/client-id": CLIENT,
    "azure.workload.identity/tenant-id": TENANT,
}


@dataclass
class Fronts:
    local: LocalIssuer
    google: GoogleServer
    entra: EntraServer
    provider: str  # projects/N/locations/global/workloadIdentityPools/P/providers/X

    def clouds(self, environ: dict[str, str] | None = None) -> dict[DestinationType, Any]:
        """The clouds as the operator builds them from its settings, at the local fronts."""
        return {
            DestinationType.GoogleCloudStorage: Google(
                sts_url=self.google.token_url,
                iamcredentials_url=self.google.url,
                default_provider=self.provider,
                environ=environ or {},
            ),
            DestinationType.AzureBlobStorage: Azure(
                authority_host=self.entra.authority,
                ca_bundle=str(self.entra.ca_file),
                environ=environ or {},
            ),
        }


@pytest.fixture(scope="module")
def fronts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fronts]:
    """Google trusts the local issuer for team-a's `uploader` (impersonating WRITER, who may
    write) and for the operator's own `system:serviceaccount:destinations:operator`; Entra's
    application CLIENT has federated credentials for the same two subjects. Team-a's
    `reader` becomes READER (Google) and READER_CLIENT (Entra), who may only read."""
    local = LocalIssuer()
    folder = Path(tmp_path_factory.mktemp("entra"))
    with GoogleServer() as google, EntraServer(folder) as entra:
        provider = google.google.add_provider(POOL, "kube", local.issuer)
        for subject in (f"system:serviceaccount:{NS}:uploader", OPERATOR):
            google.google.bind_workload_identity_user(WRITER, principal(POOL, subject))
        google.google.grant(WRITER, "storage.objects.create", "storage.objects.delete")
        reader = f"system:serviceaccount:{NS}:reader"
        google.google.bind_workload_identity_user(READER, principal(POOL, reader))
        google.google.grant(READER, "storage.objects.get")
        entra.entra.add_application(TENANT, READER_CLIENT, Federated(local.issuer, reader))
        entra.entra.add_application(
            TENANT,
            CLIENT,
            Federated(local.issuer, f"system:serviceaccount:{NS}:uploader"),
            Federated(local.issuer, OPERATOR),
        )
        yield Fronts(local, google, entra, provider.removeprefix("//iam.googleapis.com/"))


OPERATOR = "system:serviceaccount:destinations:operator"


class Cluster:
    """ServiceAccounts by (namespace, name), and the audiences of the TokenRequests made."""

    def __init__(self, local: LocalIssuer) -> None:
        self.local = local
        self.accounts: dict[tuple[str, str], ServiceAccountView] = {}
        self.audiences: list[str] = []

    def add(self, name: str, annotations: dict[str, str], namespace: str = NS) -> None:
        uid = str(uuid.uuid4())
        view = ServiceAccountView(namespace, name, uid, MappingProxyType(annotations))
        self.accounts[(namespace, name)] = view

    def read(self, namespace: str, name: str) -> ServiceAccountView:
        return self.accounts[(namespace, name)]

    def token(self, account: ServiceAccountView, audience: str, seconds: int) -> IssuedToken:
        self.audiences.append(audience)
        minted = self.local.token(
            account.namespace, account.name, audience=audience, seconds=seconds
        )
        return IssuedToken(minted, time.time() + seconds)


def identities(fronts: Fronts, cluster: Cluster, **settings: Any) -> Identities:
    environ = settings.pop("environ", None)
    chosen = OperatorSettings(**{"object_level_identity": True, **settings})
    return Identities(
        chosen,
        clouds=fronts.clouds(environ),
        read_account=cluster.read,
        token_for=cluster.token,
    )


def test_n_resolutions_cost_one_token_request_and_one_exchange_per_identity(
    fronts: Fronts,
) -> None:
    cluster = Cluster(fronts.local)
    cluster.add("uploader", ANNOTATED)
    found = identities(fronts, cluster)
    sts, generate = fronts.google.google.count("/v1/token"), fronts.google.google.count(":gen")
    entra = fronts.entra.entra.count()
    uploader = {"serviceAccountName": "uploader"}
    resolved = [
        found.resolve(NS, spec(kind, uploader), 5)
        for _ in range(5)
        for kind in ("GoogleCloudStorage", "AzureBlobStorage")
    ]
    assert fronts.google.google.count("/v1/token") == sts + 1
    assert fronts.google.google.count(":gen") == generate + 1
    assert fronts.entra.entra.count() == entra + 1
    assert sorted(cluster.audiences) == sorted(
        ["api://AzureADTokenExchange", f"https://iam.googleapis.com/{fronts.provider}"]
    )
    assert len({r.issued.token for r in resolved}) == 2  # type: ignore[union-attr]
    for each in resolved:
        assert each.issued.token not in each.described  # type: ignore[union-attr]


def test_the_tokens_issued_verify_the_destinations_within_their_roles(
    fronts: Fronts, tmp_path: Path
) -> None:
    cluster = Cluster(fronts.local)
    cluster.add("uploader", ANNOTATED)
    cluster.add(
        "reader",
        {
            "iam.gke.io/gcp-service-account": READER,
            "azure.workload.identity/client-id": READER_CLIENT,
            "azure.workload.identity/tenant-id": TENANT,
        },
    )
    found = identities(fronts, cluster)
    tls = (fronts.entra.cert_file, fronts.entra.key_file)
    introspect = fronts.google.introspection_url
    roles = {CLIENT: CONTRIBUTOR, READER_CLIENT: READER_ROLE}
    account = Account(fronts.entra.entra.key.public_key(), TENANT, roles)
    with (
        GcsServer(tmp_path / "gcs", introspect=introspect) as gcs,
        Azurite(tmp_path / "azurite", oauth_tls=tls) as azurite,
        BlobFront(account, azurite, *tls) as blob,
    ):
        registry = Registry()
        registry.register(GoogleCloudStorageProvider(api_endpoint=gcs.endpoint))
        registry.register(AzureBlobStorageProvider(ca_bundle=str(tls[0])))
        for kind, member in (
            ("GoogleCloudStorage", {}),
            ("AzureBlobStorage", {"endpoint": blob.endpoint}),
        ):
            for name, reason in (
                ("uploader", Reason.ProbeSucceeded),
                ("reader", Reason.AccessDenied),
            ):
                destination = spec(kind, {"serviceAccountName": name}, **member)
                outcome = probe(destination, found.resolve(NS, destination, 5), registry, NOW)
                assert outcome.reason == reason, outcome
    logged = gcs.requests()  # the GCS probes came first: their lines are written
    assert any(f" {WRITER} 200" in line for line in logged)
    assert any(f" {READER} 403" in line for line in logged)
    made = [(r.method, r.who, r.status) for r in account.records]
    assert made == [("PUT", CLIENT, 201), ("DELETE", CLIENT, 202), ("PUT", READER_CLIENT, 403)]
    assert any(f" {WRITER} 200" in line for line in gcs.requests())


def test_the_operators_own_identity_reads_its_projected_token(
    fronts: Fronts, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    namespace, name = OPERATOR.split(":")[2:]
    environ = {
        "GOOGLE_WORKLOAD_IDENTITY_TOKEN_FILE": str(token_file),
        "GOOGLE_SERVICE_ACCOUNT": WRITER,
        "AZURE_CLIENT_ID": CLIENT,
        "AZURE_TENANT_ID": TENANT,
        "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
    }
    cluster = Cluster(fronts.local)
    found = identities(fronts, cluster, operator_identity=True, environ=environ)
    own = {"operatorIdentity": {}}
    google_audience = f"https://iam.googleapis.com/{fronts.provider}"
    token_file.write_text(fronts.local.token(namespace, name, audience=google_audience))
    assert found.resolve(NS, spec("GoogleCloudStorage", own), 5).issued.token  # type: ignore[union-attr]
    token_file.write_text(
        fronts.local.token(namespace, name, audience="api://AzureADTokenExchange")
    )
    assert found.resolve(NS, spec("AzureBlobStorage", own), 5).issued.token  # type: ignore[union-attr]
    assert cluster.audiences == []  # no TokenRequest: the pod's own token

    before = fronts.google.google.count("/v1/token"), fronts.entra.entra.count()
    off = identities(fronts, cluster, operator_identity=False, environ=environ)
    for kind in ("GoogleCloudStorage", "AzureBlobStorage"):
        with pytest.raises(IdentityNotAllowedError):
            off.resolve(NS, spec(kind, own), 5)
    assert (fronts.google.google.count("/v1/token"), fronts.entra.entra.count()) == before


@pytest.mark.parametrize("kind", ["GoogleCloudStorage", "AzureBlobStorage"])
def test_refusals_name_their_step_and_reason(fronts: Fronts, kind: str) -> None:
    cluster = Cluster(fronts.local)
    cluster.add("uploader", ANNOTATED, namespace="team-b")  # trusted for team-a only
    cluster.add("other", ANNOTATED)  # another subject than the federated one
    cluster.add("bare", {})
    found = identities(fronts, cluster)
    code = {"GoogleCloudStorage": ": PERMISSION_DENIED: ", "AzureBlobStorage": " AADSTS70021 "}
    for namespace, name in (("team-b", "uploader"), (NS, "other")):
        with pytest.raises(IdentityExchangeFailedError) as refused:
            found.resolve(namespace, spec(kind, {"serviceAccountName": name}), 5)
        assert refused.value.reason == Reason.IdentityExchangeFailed
        assert refused.value.message.startswith("exchange at ")
        assert code[kind] in refused.value.message
    no_default = Identities(
        OperatorSettings(object_level_identity=True),
        clouds={
            DestinationType.GoogleCloudStorage: Google(),
            DestinationType.AzureBlobStorage: Azure(),
        },
        read_account=cluster.read,
        token_for=cluster.token,
    )
    requested = len(cluster.audiences)
    with pytest.raises(IdentityNotConfiguredError) as missing:
        no_default.resolve(NS, spec(kind, {"serviceAccountName": "bare"}), 5)
    assert "ServiceAccount 'bare' has no" in missing.value.message
    assert len(cluster.audiences) == requested  # refused before any TokenRequest


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("GoogleCloudStorage", "GOOGLE_WORKLOAD_IDENTITY_TOKEN_FILE"),
        ("AzureBlobStorage", "AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE"),
    ],
)
def test_the_operators_own_identity_without_its_environment_is_not_configured(
    fronts: Fronts, kind: str, words: str
) -> None:
    cluster = Cluster(fronts.local)
    found = identities(fronts, cluster, operator_identity=True, environ={})
    with pytest.raises(IdentityNotConfiguredError) as missing:
        found.resolve(NS, spec(kind, {"operatorIdentity": {}}), 5)
    assert words in missing.value.message
    google = Google(environ={"GOOGLE_WORKLOAD_IDENTITY_TOKEN_FILE": "/var/run/token"})
    with pytest.raises(IdentityNotConfiguredError) as missing:
        google.operator_target()  # a token file, but no provider to present it to
    assert "gcp_workload_identity_provider" in missing.value.message
