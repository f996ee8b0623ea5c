"""Azure workload identity on loopback: a ServiceAccount token (signed as the API server signs
it) presented by `providers.azure_identity.exchange` (azure-identity's
ClientAssertionCredential) to the verifying Entra token endpoint of tests/identity/entra.py
over HTTPS; each refusal names Entra's error and never carries the token. The token issued
then writes through the Azure provider to Azurite with OAuth on (HTTPS), which checks its
audience, issuer and time but no signature: the Entra front is the strict verifier."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from blobfront import CONTRIBUTOR, READER, Account, BlobFront
from entra import EntraServer, Federated, _claims
from localissuer import LocalIssuer

from azurite import Azurite
from destination_operator.api.spec import VerificationMode, parse_spec
from destination_operator.errors import AccessDeniedError, AuthenticationFailedError
from destination_operator.outcome import StepOutcome
from destination_operator.providers.azure import AzureBlobStorageProvider
from destination_operator.providers.azure_identity import (
    AUDIENCE,
    CLIENT_ID_ANNOTATION,
    TENANT_ID_ANNOTATION,
    AssertionRefused,
    AzureIdentity,
    IdentityNotConfigured,
    azure_identity,
    exchange,
)
from destination_operator.providers.base import PROBE_DIRECTORY, ProbeResult
from destination_operator.providers.issued import AccessToken

TENANT = str(uuid.uuid4())
CLIENT = str(uuid.uuid4())
READER_CLIENT = str(uuid.uuid4())
NAMESPACE = "team-a"


@dataclass
class Azure:
    issuer: LocalIssuer
    server: EntraServer

    @property
    def identity(self) -> AzureIdentity:
        return azure_identity(
            {CLIENT_ID_ANNOTATION: CLIENT, TENANT_ID_ANNOTATION: TENANT}, "ServiceAccount 'x'"
        )

    def token(self, name: str = "uploader", *, namespace: str = NAMESPACE, **kw: object) -> str:
        audience = str(kw.pop("audience", AUDIENCE))
        return self.issuer.token(namespace, name, audience=audience, **kw)  # type: ignore[arg-type]

    def exchange(self, token: str, identity: AzureIdentity | None = None) -> AccessToken:
        return exchange(
            token,
            identity or self.identity,
            timeout_seconds=5,
            authority_host=self.server.authority,
            ca_bundle=str(self.server.ca_file),
        )


@pytest.fixture(scope="module")
def azure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azure]:
    """An application whose federated credential trusts team-a's `uploader` ServiceAccount
    of the local issuer, with Entra's audience; another (READER_CLIENT) trusts `reader`."""
    issuer = LocalIssuer()
    with EntraServer(Path(tmp_path_factory.mktemp("entra"))) as server:
        subject = f"system:serviceaccount:{NAMESPACE}:uploader"
        server.entra.add_application(TENANT, CLIENT, Federated(issuer.issuer, subject))
        reader = f"system:serviceaccount:{NAMESPACE}:reader"
        server.entra.add_application(TENANT, READER_CLIENT, Federated(issuer.issuer, reader))
        yield Azure(issuer, server)


def test_the_assertion_gets_a_storage_token_in_one_request(azure: Azure) -> None:
    before = azure.server.entra.count()
    issued = azure.exchange(azure.token())
    assert azure.server.entra.count() == before + 1
    claims = _claims(issued.token)
    assert claims is not None
    assert claims["aud"] == "https://storage.azure.com"
    assert claims["iss"] == f"https://sts.windows.net/{TENANT}/"
    assert claims["appid"] == CLIENT
    assert time.time() + 3000 < issued.expires_at <= time.time() + 3600


REFUSALS = {
    # case: (token's ServiceAccount, namespace, token arguments, AADSTS code, words)
    "another namespace": ("uploader", "team-b", {}, "AADSTS70021",
                          "system:serviceaccount:team-b:uploader"),
    "another ServiceAccount": ("other", NAMESPACE, {}, "AADSTS70021", "No matching federated"),
    "wrong audience": ("uploader", NAMESPACE, {"audience": "sts.amazonaws.com"}, "AADSTS700212",
                       "sts.amazonaws.com"),
    "expired token": ("uploader", NAMESPACE, {"now": time.time() - 7200}, "AADSTS700024",
                      "valid time range"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(REFUSALS))
def test_each_refusal_names_entras_error_and_carries_no_token(azure: Azure, case: str) -> None:
    name, namespace, arguments, aadsts, words = REFUSALS[case]
    token = azure.token(name, namespace=namespace, **arguments)
    with pytest.raises(AssertionRefused) as refused:
        azure.exchange(token)
    assert (refused.value.code, refused.value.aadsts) == ("invalid_client", aadsts)
    assert words in str(refused.value)
    assert token not in str(refused.value) and token.split(".")[2] not in str(refused.value)


def test_a_token_signed_by_another_key_under_the_trusted_issuer_is_refused(azure: Azure) -> None:
    forger = LocalIssuer(azure.issuer.url)
    token = forger.token(NAMESPACE, "uploader", audience=AUDIENCE)
    with pytest.raises(AssertionRefused) as refused:
        azure.exchange(token)
    assert refused.value.aadsts == "AADSTS700027"


def test_an_unknown_application_and_tenant_are_refused(azure: Azure) -> None:
    with pytest.raises(AssertionRefused) as refused:
        azure.exchange(azure.token(), AzureIdentity(TENANT, str(uuid.uuid4())))
    assert (refused.value.code, refused.value.aadsts) == ("unauthorized_client", "AADSTS700016")
    with pytest.raises(AssertionRefused) as refused:
        azure.exchange(azure.token(), AzureIdentity(str(uuid.uuid4()), CLIENT))
    assert refused.value.aadsts == "AADSTS90002"


def test_the_authority_must_be_https_and_trusted(azure: Azure) -> None:
    plain = azure.server.authority.replace("https://", "http://")
    with pytest.raises(AssertionRefused) as refused:
        exchange(azure.token(), azure.identity, timeout_seconds=2, authority_host=plain)
    assert refused.value.code == "invalid_authority"
    with pytest.raises(AssertionRefused) as refused:  # the system's CAs do not know it
        exchange(
            azure.token(),
            azure.identity,
            timeout_seconds=2,
            authority_host=azure.server.authority,
        )
    assert refused.value.code == "unreachable"


@pytest.mark.parametrize(
    ("annotations", "default_tenant", "words"),
    [
        ({}, TENANT, f"has no {CLIENT_ID_ANNOTATION} annotation"),
        ({CLIENT_ID_ANNOTATION: "not-a-guid"}, TENANT, "is not a GUID"),
        ({CLIENT_ID_ANNOTATION: CLIENT}, None, f"has no {TENANT_ID_ANNOTATION} annotation"),
        ({CLIENT_ID_ANNOTATION: CLIENT, TENANT_ID_ANNOTATION: "x/../y"}, None, "not a GUID"),
    ],
    ids=["no client", "malformed client", "no tenant", "malformed tenant"],
)
def test_annotations_that_name_no_identity_are_refused_before_any_call(
    annotations: dict[str, str], default_tenant: str | None, words: str
) -> None:
    with pytest.raises(IdentityNotConfigured) as refused:
        azure_identity(annotations, "ServiceAccount 'x'", default_tenant=default_tenant)
    assert words in str(refused.value)


def test_the_operators_default_tenant_serves_a_service_account_without_one() -> None:
    found = azure_identity({CLIENT_ID_ANNOTATION: CLIENT.upper()}, "x", default_tenant=TENANT)
    assert found == AzureIdentity(TENANT, CLIENT)
    assert found.key == (TENANT, CLIENT)


# --- Azurite with OAuth on: the storage takes the token ------------------------------------------


@pytest.fixture(scope="module")
def azurite(azure: Azure, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite over HTTPS (the Entra front's certificate) with `--oauth basic`."""
    state = Path(tmp_path_factory.mktemp("azurite-oauth"))
    tls = (azure.server.cert_file, azure.server.key_file)
    with Azurite(state, oauth_tls=tls) as server:
        yield server


def probe(azurite: Azurite, issued: AccessToken, endpoint: str = "") -> ProbeResult:
    """A WriteDelete probe with `issued` at Azurite, or at `endpoint` (the verifying front)."""
    provider = AzureBlobStorageProvider(ca_bundle=str(azurite.oauth_tls[0]))  # type: ignore[index]
    spec = parse_spec(
        {
            "type": "AzureBlobStorage",
            "azureBlobStorage": {
                "storageAccountName": azurite.account,
                "containerName": azurite.containers[0],
                "endpoint": endpoint or azurite.endpoint,
            },
            "credentials": {"secretRef": {"name": "unused"}},
        }
    )
    key = f"{PROBE_DIRECTORY}/{uuid.uuid4()}.txt"
    credentials = provider.load_identity(issued)
    return provider.probe(spec, credentials, key, VerificationMode.WriteDelete, 10)


def test_azurite_takes_the_issued_token_for_a_write_and_a_delete(
    azure: Azure, azurite: Azurite
) -> None:
    result = probe(azurite, azure.exchange(azure.token()))
    assert result.error is None, result.error
    assert [step.outcome for step in result.steps] == [StepOutcome.Succeeded] * 2


def test_azurite_checks_the_tokens_audience_but_not_its_signature(
    azure: Azure, azurite: Azurite
) -> None:
    """Why the Entra front is the strict verifier: Azurite refuses a token for another
    audience, yet takes one that no Entra signed, as long as its claims look right."""
    issued = azure.exchange(azure.token())
    head, _, signature = issued.token.split(".")
    claims = _claims(issued.token)
    assert claims is not None

    def forged(**changes: object) -> AccessToken:
        body = base64.urlsafe_b64encode(json.dumps({**claims, **changes}).encode())
        return AccessToken(f"{head}.{body.rstrip(b'=').decode()}.{signature}", issued.expires_at)

    other = probe(azurite, forged(aud="https://vault.azure.net"))
    assert isinstance(other.error, AuthenticationFailedError | AccessDeniedError), other.error
    unsigned = probe(azurite, forged(appid=str(uuid.uuid4())))
    assert unsigned.error is None  # a signature Azurite never checks


# --- the verifying front: what Azurite does not check ---------------------------------------------


@pytest.fixture(scope="module")
def front(azure: Azure, azurite: Azurite) -> Iterator[BlobFront]:
    """Azurite behind a front that checks the token's signature, tenant and data role: the
    uploader's application is a Storage Blob Data Contributor, the reader's a Reader."""
    entra = azure.server.entra
    roles = {CLIENT: CONTRIBUTOR, READER_CLIENT: READER}
    account = Account(entra.key.public_key(), TENANT, roles)
    with BlobFront(account, azurite, azure.server.cert_file, azure.server.key_file) as server:
        yield server


def test_through_the_front_the_contributor_writes_and_deletes(
    azure: Azure, azurite: Azurite, front: BlobFront
) -> None:
    result = probe(azurite, azure.exchange(azure.token()), front.endpoint)
    assert result.error is None, result.error
    assert [(r.method, r.who, r.status) for r in front.account.records[-2:]] == [
        ("PUT", CLIENT, 201),
        ("DELETE", CLIENT, 202),
    ]


def test_the_readers_role_refuses_the_write(
    azure: Azure, azurite: Azurite, front: BlobFront
) -> None:
    reader = AzureIdentity(TENANT, READER_CLIENT)
    result = probe(azurite, azure.exchange(azure.token("reader"), reader), front.endpoint)
    assert isinstance(result.error, AccessDeniedError), result.error
    assert "AuthorizationPermissionMismatch" in result.error.message


def test_the_front_refuses_a_token_azurite_would_take(
    azure: Azure, azurite: Azurite, front: BlobFront
) -> None:
    """The reader's token, its oid changed to the contributor's, the signature kept:
    Azurite writes with it; the front checks the signature and refuses."""
    issued = azure.exchange(azure.token("reader"), AzureIdentity(TENANT, READER_CLIENT))
    head, _, signature = issued.token.split(".")
    claims = {**(_claims(issued.token) or {}), "oid": CLIENT, "appid": CLIENT}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forged = AccessToken(f"{head}.{body}.{signature}", issued.expires_at)
    assert probe(azurite, forged).error is None  # Azurite: no signature check
    result = probe(azurite, forged, front.endpoint)
    assert isinstance(result.error, AuthenticationFailedError), result.error
    assert "InvalidAuthenticationInfo" in result.error.message
