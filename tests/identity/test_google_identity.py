"""Google workload identity federation, end to end on loopback: a ServiceAccount token
(signed as the API server signs it) exchanged by `providers.google_identity.exchange`
(google-auth's identity_pool credentials) at the verifying STS and iamcredentials of
tests/identity/googlests.py, then a probe with the token issued, which fake-gcs-server's
checking front (hack/gcsserver.py --introspect) accepts only within the identity's
permissions. Each refusal names its step and never carries the token."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from googlests import GoogleServer, principal
from localissuer import LocalIssuer

from destination_operator.api.spec import DestinationSpec, VerificationMode, parse_spec
from destination_operator.errors import AccessDeniedError, InvalidSpecError
from destination_operator.outcome import StepOutcome
from destination_operator.providers.base import PROBE_DIRECTORY
from destination_operator.providers.gcs import GoogleCloudStorageProvider
from destination_operator.providers.google_identity import (
    PROVIDER_ANNOTATION,
    SERVICE_ACCOUNT_ANNOTATION,
    FederationRefused,
    GoogleIdentity,
    IdentityNotConfigured,
    exchange,
    google_identity,
)
from destination_operator.providers.issued import AccessToken, AwsSession
from gcsserver import GcsServer

NAMESPACE = "team-a"
WRITER = "writer@project.iam.gserviceaccount.com"
READER = "reader@project.iam.gserviceaccount.com"
POOL = "cluster-pool"


@dataclass
class Google:
    issuer: LocalIssuer
    server: GoogleServer
    provider: str  # the pool provider's resource name (STS's audience)

    def identity(self, service_account: str = "") -> GoogleIdentity:
        annotations = {PROVIDER_ANNOTATION: self.provider.removeprefix("//iam.googleapis.com/")}
        if service_account:
            annotations[SERVICE_ACCOUNT_ANNOTATION] = service_account
        return google_identity(annotations, "ServiceAccount 'uploader'")

    def token(self, name: str, *, namespace: str = NAMESPACE, **kwargs: object) -> str:
        audience = str(kwargs.pop("audience", self.identity().token_audience))
        return self.issuer.token(namespace, name, audience=audience, **kwargs)  # type: ignore[arg-type]

    def exchange(self, token: str, identity: GoogleIdentity) -> AccessToken:
        return exchange(
            token,
            identity,
            timeout_seconds=5,
            sts_url=self.server.token_url,
            iamcredentials_url=self.server.url,
        )


@pytest.fixture(scope="module")
def google() -> Iterator[Google]:
    """A pool provider trusting the local issuer for namespace team-a (its attribute
    condition); `writer` may be impersonated by team-a's `uploader` and write; `reader` by
    `uploader` too, and may only read; the federated principal of `direct` may write."""
    issuer = LocalIssuer()
    with GoogleServer() as server:
        state = server.google
        provider = state.add_provider(
            POOL,
            "kubernetes",
            issuer.issuer,
            condition=lambda subject: subject.startswith(f"system:serviceaccount:{NAMESPACE}:"),
        )
        uploader = principal(POOL, f"system:serviceaccount:{NAMESPACE}:uploader")
        state.bind_workload_identity_user(WRITER, uploader)
        state.bind_workload_identity_user(READER, uploader)
        state.grant(WRITER, "storage.objects.create", "storage.objects.delete")
        state.grant(READER, "storage.objects.get")
        direct = principal(POOL, f"system:serviceaccount:{NAMESPACE}:direct")
        state.grant(direct, "storage.objects.create", "storage.objects.delete")
        yield Google(issuer, server, provider)


@pytest.fixture(scope="module")
def gcs(google: Google, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsServer]:
    """fake-gcs-server behind its checking front, which asks the local Google about the
    tokens it did not issue."""
    state = Path(tmp_path_factory.mktemp("gcs-federation"))
    with GcsServer(state, introspect=google.server.introspection_url) as server:
        yield server


def spec(bucket: str) -> DestinationSpec:
    return parse_spec(
        {
            "type": "GoogleCloudStorage",
            "googleCloudStorage": {"bucket": bucket},
            "credentials": {"secretRef": {"name": "unused"}},
        }
    )


def probe(gcs: GcsServer, issued: AccessToken) -> tuple[bool, str]:
    """A WriteDelete probe with `issued`: (verified, the failure's message or "")."""
    provider = GoogleCloudStorageProvider(api_endpoint=gcs.endpoint)
    credentials = provider.load_identity(issued)
    key = f"{PROBE_DIRECTORY}/{uuid.uuid4()}.txt"
    result = provider.probe(spec(gcs.buckets[0]), credentials, key, VerificationMode.WriteDelete, 5)
    if result.error is not None:
        assert isinstance(result.error, AccessDeniedError), result.error
        return False, result.error.message
    return all(step.outcome == StepOutcome.Succeeded for step in result.steps), ""


def test_the_federated_token_itself_writes(google: Google, gcs: GcsServer) -> None:
    """No service account named: STS's federated token goes to the storage, which checks
    the principal's own permissions; one exchange, no impersonation."""
    before = len(google.server.google.records)
    issued = google.exchange(google.token("direct"), google.identity())
    made = [(r.path, r.status) for r in google.server.google.records[before:]]
    assert made == [("/v1/token", 200)]
    assert issued.expires_at > time.time() + 3000
    assert probe(gcs, issued) == (True, "")


def test_an_impersonated_token_writes_and_the_storage_sees_the_service_account(
    google: Google, gcs: GcsServer
) -> None:
    before = len(google.server.google.records)
    issued = google.exchange(google.token("uploader"), google.identity(WRITER))
    made = [(r.path, r.status) for r in google.server.google.records[before:]]
    generate = f"/v1/projects/-/serviceAccounts/{WRITER}:generateAccessToken"
    assert made == [("/v1/token", 200), (generate, 200)]
    assert probe(gcs, issued) == (True, "")
    assert any(f" {WRITER} 200" in line for line in gcs.requests())


def test_the_storage_refuses_a_write_outside_the_service_accounts_permissions(
    google: Google, gcs: GcsServer
) -> None:
    issued = google.exchange(google.token("uploader"), google.identity(READER))
    verified, message = probe(gcs, issued)
    assert not verified
    assert f"{READER} does not have storage.objects.create access" in message


REFUSALS = {
    # case: (ServiceAccount, namespace, token arguments, service account, step, code, words)
    "wrong audience": ("direct", NAMESPACE, {"audience": "sts.amazonaws.com"}, "", "sts",
                       "invalid_grant", "audience"),
    "expired token": ("direct", NAMESPACE, {"now": time.time() - 7200}, "", "sts",
                      "invalid_grant", "expired"),
    "another namespace": ("direct", "team-b", {}, "", "sts", "unauthorized_client",
                          "attribute condition"),
    "impersonation not granted": ("other", NAMESPACE, {}, WRITER, "iamcredentials",
                                  "PERMISSION_DENIED", "iam.serviceAccounts.getAccessToken"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(REFUSALS))
def test_each_refusal_names_its_step_and_carries_no_token(google: Google, case: str) -> None:
    name, namespace, arguments, service_account, step, code, words = REFUSALS[case]
    token = google.token(name, namespace=namespace, **arguments)
    with pytest.raises(FederationRefused) as refused:
        google.exchange(token, google.identity(service_account))
    assert (refused.value.step, refused.value.code) == (step, code)
    assert words in str(refused.value)
    assert token not in str(refused.value) and token.split(".")[2] not in str(refused.value)


def test_a_token_of_another_issuer_and_an_unknown_provider_are_refused(google: Google) -> None:
    stranger = LocalIssuer(google.issuer.url)  # the same name, another key
    token = stranger.token(NAMESPACE, "direct", audience=google.identity().token_audience)
    with pytest.raises(FederationRefused) as refused:
        google.exchange(token, google.identity())
    assert (refused.value.code, "signature" in refused.value.detail) == ("invalid_grant", True)
    unknown = GoogleIdentity(google.provider.replace(POOL, "no-such-pool"))
    with pytest.raises(FederationRefused) as refused:
        google.exchange(google.token("direct"), unknown)
    assert refused.value.code == "invalid_target"


def test_an_unreachable_sts_is_named() -> None:
    issuer = LocalIssuer()
    identity = google_identity(
        {
            PROVIDER_ANNOTATION: f"projects/1/locations/global/workloadIdentityPools/{POOL}/"
            "providers/kubernetes"
        },
        "ServiceAccount 'x'",
    )
    with GoogleServer() as server:
        url = server.token_url  # closed below: nothing listens there any more
    token = issuer.token(NAMESPACE, "x", audience=identity.token_audience)
    with pytest.raises(FederationRefused) as refused:
        exchange(token, identity, timeout_seconds=2, sts_url=url)
    assert (refused.value.step, refused.value.code) == ("sts", "unreachable")
    assert token not in str(refused.value)


@pytest.mark.parametrize(
    ("annotations", "words"),
    [
        ({}, f"has no {PROVIDER_ANNOTATION} annotation"),
        ({PROVIDER_ANNOTATION: "projects/x/pools/y"}, "is not a workload identity pool provider"),
        (
            {
                PROVIDER_ANNOTATION: "projects/1/locations/global/workloadIdentityPools/pool/"
                "providers/kube",
                SERVICE_ACCOUNT_ANNOTATION: "a/../../b@x.iam.gserviceaccount.com",
            },
            "is not a Google service account e-mail",
        ),
    ],
    ids=["no provider", "malformed provider", "malformed service account"],
)
def test_annotations_that_name_no_identity_are_refused_before_any_call(
    annotations: dict[str, str], words: str
) -> None:
    with pytest.raises(IdentityNotConfigured) as refused:
        google_identity(annotations, "ServiceAccount 'uploader'")
    assert words in str(refused.value)


def test_the_default_provider_serves_a_service_account_without_the_annotation() -> None:
    default = "projects/1/locations/global/workloadIdentityPools/pool/providers/kube"
    found = google_identity(
        {SERVICE_ACCOUNT_ANNOTATION: WRITER}, "ServiceAccount 'x'", default_provider=default
    )
    assert found.provider == "//iam.googleapis.com/" + default
    assert found.token_audience == "https://iam.googleapis.com/" + default
    assert found.key == (found.provider, WRITER)


def test_the_provider_refuses_credentials_of_another_kind() -> None:
    with pytest.raises(InvalidSpecError):
        GoogleCloudStorageProvider().load_identity(AwsSession("a", "b", "c", 0.0))
