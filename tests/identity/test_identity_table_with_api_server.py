"""The identity table's cases that need the API server itself, through the path a
Destination takes: `identity.resolve.Identities` with the operator's own Kubernetes calls
(`read_service_account`, `request_token`) under a ServiceAccount bound to the operator's
grants, the API server's TokenRequest tokens, and the verifying fronts trusting the API
server as an OIDC issuer (its discovery document and JWKS).

- A missing ServiceAccount, and RBAC without `serviceaccounts/token`, for Google and Azure
  (AWS's are in test_aws_identity.py).
- An expired token of the API server's, for the three clouds: the API server mints 600 s at
  least, so the fronts' clock (`ClusterIssuer.now`) is moved past `exp`.
- The operator's own identity: a token the API server minted for the operator's
  ServiceAccount, bound to its pod, in a projected-volume folder laid out as the kubelet
  writes it (`ProjectedToken`); the storage fronts accept what it is exchanged for; the
  kubelet's rotation of the file is read when the cached credentials near their expiry.

`OBSERVED` collects (cloud, case, reason, message); the module prints it at its end.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from awssts import AwsStsFront
from blobfront import CONTRIBUTOR, Account, BlobFront
from entra import EXCHANGE_AUDIENCE, EntraServer, Federated
from googlests import GoogleServer, principal
from identityprobe import probe, spec
from kubernetes import client
from oidc import ClusterIssuer, digest

from azurite import Azurite
from destination_operator.api.spec import DestinationType
from destination_operator.api.status import Reason
from destination_operator.errors import (
    DestinationError,
    IdentityExchangeFailedError,
    ServiceAccountNotFoundError,
    TokenRequestForbiddenError,
)
from destination_operator.identity.aws import ROLE_ANNOTATION, Aws
from destination_operator.identity.azure import Azure
from destination_operator.identity.clouds import TOKEN_SECONDS
from destination_operator.identity.google import Google
from destination_operator.identity.resolve import Identities, RequestToken
from destination_operator.kube import client as kube_client
from destination_operator.kube.serviceaccounts import (
    IssuedToken,
    ServiceAccountView,
    request_token,
)
from destination_operator.providers.registry import Registry, registry_for
from destination_operator.providers.tokencache import TokenCache
from destination_operator.settings import OperatorSettings
from gcsserver import GcsServer
from harness import Cluster
from s3server import S3Server

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("destination_crd")]

POOL = "cluster-pool"
WRITER = "writer@project.iam.gserviceaccount.com"
TENANT = str(uuid.uuid4())
GCS, BLOB, S3 = (
    DestinationType.GoogleCloudStorage,
    DestinationType.AzureBlobStorage,
    DestinationType.AmazonS3,
)
CLOUD = {GCS: "Google", BLOB: "Azure", S3: "AWS"}
OPERATOR_RULES = [  # the chart's grants with objectLevelIdentity, in the watched namespace
    {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
]
OBSERVED: list[tuple[str, str, str, str]] = []


@dataclass
class Fronts:
    issuer: ClusterIssuer  # the API server, as the fronts trust it
    google: GoogleServer
    entra: EntraServer
    aws: AwsStsFront
    provider: str  # projects/N/locations/global/workloadIdentityPools/P/providers/X

    def exchanges(self) -> tuple[int, int, int]:
        return (self.google.google.count("/v1/token"), self.entra.entra.count(), self.aws.calls)

    def clouds(self, environ: dict[str, str] | None = None) -> dict[DestinationType, Any]:
        """The clouds as the operator builds them from its settings, at the fronts."""
        return {
            GCS: Google(
                sts_url=self.google.token_url,
                iamcredentials_url=self.google.url,
                default_provider=self.provider,
                environ=environ or {},
            ),
            BLOB: Azure(
                authority_host=self.entra.authority,
                ca_bundle=str(self.entra.ca_file),
                environ=environ or {},
            ),
            S3: Aws(OperatorSettings(aws_sts_endpoint=self.aws.endpoint), environ={}),
        }

    def trust(self, kind: DestinationType, subject: str) -> dict[str, str]:
        """Let `subject` become this cloud's writer; the annotations naming that identity
        (for a ServiceAccount) or, for Azure, the new application's client id."""
        if kind == GCS:
            self.google.google.bind_workload_identity_user(WRITER, principal(POOL, subject))
            return {"iam.gke.io/gcp-service-account": WRITER}
        if kind == BLOB:
            app = str(uuid.uuid4())
            self.entra.entra.add_application(TENANT, app, Federated(self.issuer, subject))
            return {
                "azure.workload.identity/client-id": app,
                "azure.workload.identity/tenant-id": TENANT,
            }
        name = f"r-{uuid.uuid4().hex[:12]}"
        return {ROLE_ANNOTATION: self.aws.create_role(name, subject=subject, allow=["s3:*"])}


@pytest.fixture(scope="module")
def fronts(
    cluster: Cluster, s3: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fronts]:
    issuer = ClusterIssuer.of_control_plane(cluster.server, cluster.plane.pki)
    admin = s3.users["admin"]
    aws = AwsStsFront(issuer, s3.endpoint, (admin.access_key_id, admin.secret_access_key))
    folder = Path(tmp_path_factory.mktemp("entra"))
    try:
        with GoogleServer() as google, EntraServer(folder) as entra:
            provider = google.google.add_provider(POOL, "kube", issuer)
            google.google.grant(WRITER, "storage.objects.create", "storage.objects.delete")
            yield Fronts(issuer, google, entra, aws, provider.removeprefix("//iam.googleapis.com/"))
    finally:
        aws.close()


@pytest.fixture(scope="module", autouse=True)
def print_observed() -> Iterator[None]:
    yield
    print("\ncloud | case | reason | message")
    for row in OBSERVED:
        print(" | ".join(row))


@contextlib.contextmanager
def operator_grants(
    cluster: Cluster, namespace: str, folder: Path, rules: list[dict[str, Any]]
) -> Iterator[None]:
    """The operator's Kubernetes calls made as a ServiceAccount bound to exactly `rules`."""
    name = f"op-{uuid.uuid4().hex[:6]}"
    kubeconfig = cluster.service_account_kubeconfig(namespace, name, rules=rules, out_dir=folder)
    # The authorizer sees a new RoleBinding through its informer, a moment later.
    core = client.CoreV1Api(cluster.api_client(str(kubeconfig)))
    deadline = time.monotonic() + 10
    while True:
        try:
            core.read_namespaced_service_account(name, namespace)
            break
        except client.ApiException as err:
            if err.status != 403 or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    kube_client.use(str(kubeconfig))
    try:
        yield
    finally:
        kube_client.use()


def service_account(cluster: Cluster, namespace: str, name: str, annotations: Any) -> str:
    core = client.CoreV1Api(cluster.api_client())
    body = {"metadata": {"name": name, "annotations": dict(annotations)}}
    return str(core.create_namespaced_service_account(namespace, body).metadata.uid)


def identities(
    fronts: Fronts,
    *,
    environ: dict[str, str] | None = None,
    token_for: RequestToken = request_token,
    clock: Callable[[], float] = time.time,
) -> Identities:
    settings = OperatorSettings(object_level_identity=True, operator_identity=environ is not None)
    return Identities(
        settings,
        clouds=fronts.clouds(environ),
        cache=TokenCache(clock=clock),
        token_for=token_for,
    )


def observe(kind: DestinationType, case: str, err: DestinationError) -> str:
    OBSERVED.append((CLOUD[kind], case, err.reason.value, err.message))
    return err.message


@pytest.mark.parametrize("kind", [GCS, BLOB], ids=["google", "azure"])
def test_a_missing_service_account_is_service_account_not_found(
    cluster: Cluster, namespace: str, fronts: Fronts, tmp_path: Path, kind: DestinationType
) -> None:
    before = fronts.exchanges()
    ghost = spec(kind, {"serviceAccountName": "ghost"})
    with (
        operator_grants(cluster, namespace, tmp_path, OPERATOR_RULES),
        pytest.raises(ServiceAccountNotFoundError) as missing,
    ):
        identities(fronts).resolve(namespace, ghost, 10)
    message = observe(kind, "missing ServiceAccount", missing.value)
    assert missing.value.reason == Reason.ServiceAccountNotFound
    assert message == "reading ServiceAccount 'ghost': not found in the Destination's namespace"
    assert fronts.exchanges() == before  # refused before any exchange


@pytest.mark.parametrize("kind", [GCS, BLOB], ids=["google", "azure"])
def test_rbac_without_the_token_grant_is_token_request_forbidden(
    cluster: Cluster, namespace: str, fronts: Fronts, tmp_path: Path, kind: DestinationType
) -> None:
    annotations = fronts.trust(kind, f"system:serviceaccount:{namespace}:uploader")
    service_account(cluster, namespace, "uploader", annotations)
    before = fronts.exchanges()
    with operator_grants(cluster, namespace, tmp_path, OPERATOR_RULES[:1]):  # get only
        found = identities(fronts)
        with pytest.raises(TokenRequestForbiddenError) as refused:
            found.resolve(namespace, spec(kind, {"serviceAccountName": "uploader"}), 10)
    message = observe(kind, "RBAC without serviceaccounts/token", refused.value)
    assert refused.value.reason == Reason.TokenRequestForbidden
    # The refused grant and the namespace survive the cut at 240 characters (Google's
    # audience is long): the operator said them after the audience until this test.
    assert message.startswith(
        "token request for ServiceAccount 'uploader': the API server refused the operator "
        f"create on serviceaccounts/token in namespace {namespace!r}: "
    )
    assert fronts.exchanges() == before
    # The same operator with the grant: the ServiceAccount is trusted, the grant was the gap.
    with operator_grants(cluster, namespace, tmp_path, OPERATOR_RULES):
        assert (
            identities(fronts)
            .resolve(namespace, spec(kind, {"serviceAccountName": "uploader"}), 10)
            .issued
        )


EXPIRED = {
    S3: "ExpiredTokenException: Token expired",
    GCS: "invalid_grant: ID Token has expired.",
    BLOB: "invalid_client: AADSTS700024 Client assertion is not within its valid time range.",
}


@pytest.mark.parametrize("kind", [S3, GCS, BLOB], ids=["aws", "google", "azure"])
def test_an_expired_api_server_token_is_refused_by_the_cloud(
    cluster: Cluster, namespace: str, fronts: Fronts, tmp_path: Path, kind: DestinationType
) -> None:
    annotations = fronts.trust(kind, f"system:serviceaccount:{namespace}:uploader")
    service_account(cluster, namespace, "uploader", annotations)
    minted: list[IssuedToken] = []

    def token_for(account: ServiceAccountView, audience: str, seconds: int) -> IssuedToken:
        minted.append(request_token(account, audience, seconds))
        return minted[-1]

    destination = spec(kind, {"serviceAccountName": "uploader"})
    with operator_grants(cluster, namespace, tmp_path, OPERATOR_RULES):
        found = identities(fronts, token_for=token_for)
        fronts.issuer.now = lambda: time.time() + TOKEN_SECONDS + 60  # past the token's exp
        try:
            with pytest.raises(IdentityExchangeFailedError) as refused:
                found.resolve(namespace, destination, 10)
        finally:
            fronts.issuer.now = time.time
        # The same token on the services' true clock: accepted (it is cached, not minted anew).
        assert found.resolve(namespace, destination, 10).issued
    (token,) = minted
    assert TOKEN_SECONDS - 60 < token.expires_at - time.time() <= TOKEN_SECONDS
    message = observe(kind, "expired token (API server's)", refused.value)
    assert refused.value.reason == Reason.IdentityExchangeFailed
    assert message.startswith("exchange at ") and EXPIRED[kind] in message
    assert token.token not in message and token.token.split(".")[2] not in message


class ProjectedToken:
    """A projected ServiceAccount token volume as the kubelet writes it (its atomic writer):
    the data in a timestamped folder, `..data` a symlink to it, `token` a symlink through
    `..data`; a rotation writes a new folder and swaps `..data` in one rename."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir()
        self.path = folder / "token"

    def write(self, token: str) -> None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("..%Y_%m_%d_%H_%M_%S.%f")
        data = self.folder / stamp
        data.mkdir()
        (data / "token").write_text(token)
        (data / "token").chmod(0o600)
        swap = self.folder / "..data_tmp"
        swap.symlink_to(stamp)
        old = (self.folder / "..data").readlink() if (self.folder / "..data").exists() else None
        swap.rename(self.folder / "..data")
        if not self.path.is_symlink():
            self.path.symlink_to("..data/token")
        if old is not None:
            for file in (self.folder / old).iterdir():
                file.unlink()
            (self.folder / old).rmdir()


def pod_token(cluster: Cluster, namespace: str, pod: tuple[str, str], audience: str) -> str:
    """A token for the pod's ServiceAccount, bound to the pod, as the kubelet requests it."""
    core = client.CoreV1Api(cluster.api_client())
    bound = {"kind": "Pod", "apiVersion": "v1", "name": pod[0], "uid": pod[1]}
    body = {"spec": {"audiences": [audience], "expirationSeconds": 3600, "boundObjectRef": bound}}
    token = str(
        core.create_namespaced_service_account_token("operator", namespace, body).status.token
    )
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["kubernetes.io"]["pod"] == {"name": pod[0], "uid": pod[1]}
    return token


def operator_pod(cluster: Cluster, namespace: str) -> tuple[str, str]:
    """The operator's ServiceAccount and a pod of it (never scheduled: no node here)."""
    service_account(cluster, namespace, "operator", {})
    core = client.CoreV1Api(cluster.api_client())
    pod = core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "operator"},
            "spec": {
                "serviceAccountName": "operator",
                "automountServiceAccountToken": False,
                "containers": [{"name": "operator", "image": "destination-operator:test"}],
            },
        },
    )
    return "operator", str(pod.metadata.uid)


@dataclass
class Storage:
    gcs: GcsServer
    blob: BlobFront
    account: Account
    registry: Registry


@pytest.fixture(scope="module")
def storage(fronts: Fronts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Storage]:
    """fake-gcs-server's checking front and Azurite behind its verifying front."""
    folder = Path(tmp_path_factory.mktemp("storage"))
    tls = (fronts.entra.cert_file, fronts.entra.key_file)
    account = Account(fronts.entra.entra.key.public_key(), TENANT, {})
    with (
        GcsServer(folder / "gcs", introspect=fronts.google.introspection_url) as gcs,
        Azurite(folder / "azurite", oauth_tls=tls) as azurite,
        BlobFront(account, azurite, *tls) as blob,
    ):
        # the operator-level endpoints, as the settings gcp_storage_endpoint and
        # azure_blob_endpoint (with identity_ca_bundle) give them
        registry = registry_for(
            gcp_storage_endpoint=gcs.endpoint,
            azure_blob_endpoint=blob.endpoint.rsplit("/", 1)[0] + "/{account}",
            azure_blob_ca_bundle=str(tls[0]),
        )
        yield Storage(gcs, blob, account, registry)


def probe_own(kind: DestinationType, found: Identities, namespace: str, storage: Storage) -> Any:
    """Resolve the operator's own identity for `kind`, then probe the storage with it, at the
    operator's storage endpoints (`storage.registry`)."""
    destination = spec(kind, {"operatorIdentity": {}})
    resolved = found.resolve(namespace, destination, 10)
    return resolved, probe(destination, resolved, storage.registry)


@pytest.mark.parametrize("kind", [GCS, BLOB], ids=["google", "azure"])
def test_the_operators_own_projected_token_verifies_and_its_rotation_is_read_near_expiry(
    cluster: Cluster,
    namespace: str,
    fronts: Fronts,
    storage: Storage,
    tmp_path: Path,
    kind: DestinationType,
) -> None:
    subject = f"system:serviceaccount:{namespace}:operator"
    trusted = fronts.trust(kind, subject)
    volume = ProjectedToken(tmp_path / "serviceaccount")
    if kind == GCS:
        audience = f"https://iam.googleapis.com/{fronts.provider}"
        environ = {"GOOGLE_WORKLOAD_IDENTITY_TOKEN_FILE": str(volume.path)}
        environ["GOOGLE_SERVICE_ACCOUNT"] = WRITER
        presented = fronts.google.google.presented
    else:
        audience = EXCHANGE_AUDIENCE
        client_id = trusted["azure.workload.identity/client-id"]
        environ = {"AZURE_CLIENT_ID": client_id, "AZURE_TENANT_ID": TENANT}
        environ["AZURE_FEDERATED_TOKEN_FILE"] = str(volume.path)
        presented = fronts.entra.entra.presented
        storage.account.roles[client_id] = CONTRIBUTOR
    pod = operator_pod(cluster, namespace)
    first = pod_token(cluster, namespace, pod, audience)
    volume.write(first)
    skew = [0.0]  # the operator's clock, moved forward to near the credentials' expiry
    minted: list[str] = []

    def no_token_request(*_: Any) -> IssuedToken:
        minted.append("requested")
        raise AssertionError("the operator's own identity requests no token")

    found = identities(
        fronts, environ=environ, token_for=no_token_request, clock=lambda: time.time() + skew[0]
    )
    before = fronts.exchanges()
    outcomes = [probe_own(kind, found, namespace, storage) for _ in range(5)]
    assert [o.reason for _, o in outcomes] == [Reason.ProbeSucceeded] * 5, outcomes[0][1]
    assert sum(fronts.exchanges()) - sum(before) == 1  # five probes, one exchange
    assert presented[-1] == digest(first)
    resolved = outcomes[0][0]
    assert {r.issued.token for r, _ in outcomes} == {resolved.issued.token}

    second = pod_token(cluster, namespace, pod, audience)
    volume.write(second)  # the kubelet rotates the file; the cached credentials still serve
    assert probe_own(kind, found, namespace, storage)[0].issued.token == resolved.issued.token
    assert sum(fronts.exchanges()) - sum(before) == 1

    # Within the refresh margin (five minutes before a one-hour token's expiry): the file is
    # read again and its new token exchanged, once for the next N probes.
    skew[0] = resolved.issued.expires_at - 299 - time.time()
    later = [probe_own(kind, found, namespace, storage) for _ in range(5)]
    assert [o.reason for _, o in later] == [Reason.ProbeSucceeded] * 5, later[0][1]
    assert sum(fronts.exchanges()) - sum(before) == 2
    assert presented[-1] == digest(second) != digest(first)
    assert {r.issued.token for r, _ in later} != {resolved.issued.token}
    assert minted == []
    if kind == GCS:
        assert sum(f" {WRITER} 200" in line for line in storage.gcs.requests()) >= 11
    else:
        made = [(r.method, r.status) for r in storage.account.records if r.who == client_id]
        assert made == [("PUT", 201), ("DELETE", 202)] * 11
    said = "11 probes, 2 exchanges; the second presented the rotated file's token"
    case = "operator's own projected token, rotated"
    OBSERVED.append((CLOUD[kind], case, "ProbeSucceeded", said))
