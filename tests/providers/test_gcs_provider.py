"""The GCS provider against servers that check credentials as Google does.

A service account key goes through hack/gcsserver.py: its token endpoint
verifies the grant's RS256 signature, its front checks the access token and
the account's permissions, and fake-gcs-server stores the object. HMAC keys
go through the S3 server (signatures and IAM policies enforced), as GCS's
XML API would take them. Each case runs `probe.verify.verify`, the operator's
code path, with a provider aimed at those servers by the constructor
parameters no Destination can set.
"""

from __future__ import annotations

import datetime
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from slowservers import TrickleServer

from destination_operator.api.spec import DestinationSpec, DestinationType, parse_spec
from destination_operator.api.status import Reason, StepOutcome
from destination_operator.errors import ProviderUnavailableError
from destination_operator.outcome import Outcome
from destination_operator.probe.verify import verify
from destination_operator.providers.base import PROBE_DIRECTORY
from destination_operator.providers.gcs import GOOGLE_TOKEN_URIS, GoogleCloudStorageProvider
from destination_operator.providers.gcs_keys import parse_service_account_key
from destination_operator.providers.registry import Registry, default_registry
from destination_operator.providers.tokencache import AccessToken, shared_tokens
from gcsserver import GcsServer
from loopback import SilentServer
from s3server import S3Server

pytest_plugins = ["gcs_fixtures"]

NOW = datetime.datetime(2026, 11, 22, 7, 0, tzinfo=datetime.UTC)
CANARY = "canary-SECRET-never-show-me-4e8a2c6d"
SECRET_UID = "0b7c3f1e-5a2d-4c86-9e41-7d2f8a6b1c35"
OK, FAILED, SKIPPED = StepOutcome.Succeeded, StepOutcome.Failed, StepOutcome.Skipped


class Servers:
    """The servers a case needs, started on first use (fixtures looked up by name)."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request

    def _fixture(self, name: str) -> Any:
        return self._request.getfixturevalue(name)

    @cached_property
    def gcs(self) -> GcsServer:
        server: GcsServer = self._fixture("gcs")
        return server

    @cached_property
    def s3(self) -> S3Server:
        server: S3Server = self._fixture("s3")
        return server

    def url(self, where: str, form: str) -> str:
        """The base URL of `where`: the real server for `form`, or one that misbehaves."""
        if where == "server":
            return self.gcs.endpoint if form == "sa" else self.s3.endpoint
        if where == "closed":
            return f"http://127.0.0.1:{self._fixture('closed_port')}"
        if where == "untrusted":
            return f"https://127.0.0.1:{self._fixture('untrusted_tls_server')}"
        server: SilentServer | TrickleServer = self._fixture(
            {"silent": "silent_server", "trickle": "gcs_trickle_server"}[where]
        )
        return f"http://127.0.0.1:{server.port}"

    def token_uri(self, where: str) -> str:
        return self.gcs.token_uri if where == "server" else f"{self.url(where, 'sa')}/token"


SecretMaker = Callable[[Servers], dict[str, bytes]]


def other_private_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def key_file(
    account: str = "admin",
    *,
    token: str = "server",
    drop: tuple[str, ...] = (),
    **replace: str,
) -> SecretMaker:
    """A Secret holding `account`'s key file (the canary as its client_id), changed as asked."""

    def make(servers: Servers) -> dict[str, bytes]:
        document: dict[str, str] = {**servers.gcs.key_file(account), "client_id": CANARY}
        document["token_uri"] = servers.token_uri(token)
        document.update(replace)
        for name in drop:
            del document[name]
        return {"serviceAccountJson": json.dumps(document, indent=2).encode()}

    return make


def raw(**data: str) -> SecretMaker:
    return lambda servers: {name: value.encode() for name, value in data.items()}


def hmac(user: str = "admin", *, secret: str | None = None, drop: str = "") -> SecretMaker:
    """A Secret with `user`'s key pair of the S3 server as HMAC keys."""

    def make(servers: Servers) -> dict[str, bytes]:
        pair = servers.s3.users[user]
        data = {
            "hmacAccessKey": pair.access_key_id.encode(),
            "hmacSecret": (secret or pair.secret_access_key).encode(),
        }
        data.pop(drop, None)
        return data

    return make


@dataclass(frozen=True)
class Case:
    id: str
    secret: SecretMaker
    reason: Reason
    steps: tuple[StepOutcome, StepOutcome] | None  # None: refused before any connection
    says: str = ""  # words the message must contain
    endpoint: str = (
        "server"  # where the storage calls go: server, closed, untrusted, silent, trickle
    )
    token_uris: str = "test"  # "google": the production provider's, which refuse a local one
    bucket: str = ""  # "": the server's first bucket
    mode: str = "WriteDelete"
    timeout: str = "5s"

    @property
    def form(self) -> str:
        return "hmac" if self.id.startswith("hmac") else "sa"


CASES = [
    # --- a service account key (JSON API, token endpoint) ---
    Case("sa-success", key_file(), Reason.ProbeSucceeded, (OK, OK)),
    Case(
        "sa-write-mode-write-only-key",
        key_file("writer"),
        Reason.ProbeSucceeded,
        (OK, SKIPPED),
        mode="Write",
    ),
    Case(
        "sa-wrong-private-key",
        key_file(private_key=other_private_key()),
        Reason.AuthenticationFailed,
        (FAILED, SKIPPED),
        "invalid_grant (Invalid JWT Signature.)",
    ),
    Case(
        "sa-unknown-account",
        key_file(client_email="ghost@destination-operator-test.iam.gserviceaccount.com"),
        Reason.AuthenticationFailed,
        (FAILED, SKIPPED),
        "account not found",
    ),
    Case(
        "sa-bucket-missing",
        key_file(),
        Reason.BucketNotFound,
        (FAILED, SKIPPED),
        "objects.insert: HTTP 404",
        bucket="no-such-bucket",
    ),
    Case(
        "sa-write-refused",
        key_file("noaccess"),
        Reason.AccessDenied,
        (FAILED, SKIPPED),
        "does not have storage.objects.create access",
    ),
    Case(
        "sa-delete-refused",
        key_file("writer"),
        Reason.AccessDenied,
        (OK, FAILED),
        "does not have storage.objects.delete access",
    ),
    Case(
        "sa-storage-unreachable",
        key_file(),
        Reason.EndpointUnreachable,
        (FAILED, SKIPPED),
        endpoint="closed",
    ),
    Case(
        "sa-token-endpoint-unreachable",
        key_file(token="closed"),
        Reason.EndpointUnreachable,
        (FAILED, SKIPPED),
    ),
    Case(
        "sa-untrusted-certificate",
        key_file(),
        Reason.TLSError,
        (FAILED, SKIPPED),
        "certificate",
        endpoint="untrusted",
    ),
    Case(
        "sa-storage-silent",
        key_file(),
        Reason.Timeout,
        (FAILED, SKIPPED),
        endpoint="silent",
        timeout="1s",
    ),
    Case(
        "sa-storage-trickles",
        key_file(),
        Reason.Timeout,
        (FAILED, SKIPPED),
        "no complete answer within 1s",
        endpoint="trickle",
        timeout="1s",
    ),
    Case(
        "sa-token-endpoint-silent",
        key_file(token="silent"),
        Reason.Timeout,
        (FAILED, SKIPPED),
        timeout="1s",
    ),
    Case(
        "sa-token-uri-not-google",
        key_file(),
        Reason.EndpointBlocked,
        None,
        "not Google's token endpoint",
        token_uris="google",
    ),
    Case(
        "sa-secret-without-any-key",
        raw(serviceAccount=CANARY, hmacSecretKey=CANARY),
        Reason.SecretKeyMissing,
        None,
        "has none of the keys serviceAccountJson or hmacAccessKey + hmacSecret",
    ),
    Case(
        "sa-key-file-not-json",
        raw(serviceAccountJson=f"private_key: {CANARY}"),
        Reason.SecretKeyMissing,
        None,
        "serviceAccountJson is not JSON",
    ),
    Case(
        "sa-key-file-without-private-key",
        key_file(drop=("private_key",)),
        Reason.SecretKeyMissing,
        None,
        "has no 'private_key'",
    ),
    Case(
        "sa-key-file-without-client-email",
        key_file(drop=("client_email",)),
        Reason.SecretKeyMissing,
        None,
        "has no 'client_email'",
    ),
    Case(
        "sa-key-file-with-a-broken-private-key",
        key_file(private_key=f"-----BEGIN PRIVATE KEY-----\n{CANARY}\n-----END PRIVATE KEY-----"),
        Reason.SecretKeyMissing,
        (FAILED, SKIPPED),
        "not a usable RSA key",
    ),
    Case(
        "sa-key-file-and-hmac-keys-uses-the-key-file",
        lambda servers: {
            **key_file()(servers),
            "hmacAccessKey": b"GOOG1EUNUSEDUNUSED",
            "hmacSecret": CANARY.encode(),
        },
        Reason.ProbeSucceeded,
        (OK, OK),
    ),
    # --- HMAC keys (the XML API, through the S3 prober) ---
    Case("hmac-success", hmac(), Reason.ProbeSucceeded, (OK, OK)),
    Case(
        "hmac-write-mode-write-only-key",
        hmac("writer"),
        Reason.ProbeSucceeded,
        (OK, SKIPPED),
        mode="Write",
    ),
    Case(
        "hmac-wrong-secret",
        hmac(secret=CANARY),
        Reason.AuthenticationFailed,
        (FAILED, SKIPPED),
        "SignatureDoesNotMatch",
    ),
    Case(
        "hmac-bucket-missing",
        hmac(),
        Reason.BucketNotFound,
        (FAILED, SKIPPED),
        "NoSuchBucket",
        bucket="no-such-bucket",
    ),
    Case("hmac-write-refused", hmac("reader"), Reason.AccessDenied, (FAILED, SKIPPED), "PutObject"),
    Case(
        "hmac-delete-refused",
        hmac("writer"),
        Reason.AccessDenied,
        (OK, FAILED),
        "DeleteObject",
    ),
    Case(
        "hmac-unreachable",
        hmac(),
        Reason.EndpointUnreachable,
        (FAILED, SKIPPED),
        endpoint="closed",
    ),
    Case(
        "hmac-untrusted-certificate",
        hmac(),
        Reason.TLSError,
        (FAILED, SKIPPED),
        "certificate",
        endpoint="untrusted",
    ),
    Case(
        "hmac-silent",
        hmac(),
        Reason.Timeout,
        (FAILED, SKIPPED),
        endpoint="silent",
        timeout="1s",
    ),
    Case(
        "hmac-trickles",
        hmac(),
        Reason.Timeout,
        (FAILED, SKIPPED),
        "no complete answer within 1s",
        endpoint="trickle",
        timeout="1s",
    ),
    Case(
        "hmac-secret-without-the-secret",
        hmac(drop="hmacSecret"),
        Reason.SecretKeyMissing,
        None,
        "'hmacSecret'",
    ),
]


def gcs_spec(bucket: str, *, mode: str = "WriteDelete", timeout: str = "5s") -> DestinationSpec:
    """A GoogleCloudStorage spec as a user would write it."""
    return parse_spec(
        {
            "type": "GoogleCloudStorage",
            "googleCloudStorage": {"bucket": bucket},
            "pathPrefix": "probes/",
            "credentials": {"secretRef": {"name": "creds"}},
            "verification": {"mode": mode, "timeout": timeout},
        }
    )


def provider_for(servers: Servers, case: Case, token: str) -> GoogleCloudStorageProvider:
    """A provider aimed at the case's servers (what no Destination can ask for)."""
    endpoint = servers.url(case.endpoint, case.form)
    if case.form == "hmac":
        return GoogleCloudStorageProvider(interoperability_endpoint=endpoint)
    uris = GOOGLE_TOKEN_URIS if case.token_uris == "google" else frozenset({token})
    return GoogleCloudStorageProvider(api_endpoint=endpoint, token_uris=uris)


def secret_values(data: dict[str, bytes]) -> list[str]:
    """Every value in the Secret, and each credential inside a key file."""
    values = [CANARY]
    for value in data.values():
        text = value.decode()
        values.append(text)
        try:
            document = json.loads(text)
        except ValueError:
            continue
        for name in ("private_key_id", "client_email", "client_id"):
            values.append(str(document.get(name, CANARY)))
        pem = str(document.get("private_key", ""))
        values += [line for line in pem.splitlines() if len(line) > 40]  # the key's body
    return values


def messages(outcome: Outcome) -> str:
    return " | ".join([outcome.message, *(step.message for step in outcome.steps)])


def steps_of(outcome: Outcome) -> tuple[StepOutcome, ...]:
    return tuple(step.outcome for step in outcome.steps)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_probe_outcome(case: Case, request: pytest.FixtureRequest) -> None:
    servers = Servers(request)
    data = case.secret(servers)
    token = servers.token_uri("server")
    if case.form == "sa" and b"token_uri" in data.get("serviceAccountJson", b""):
        token = json.loads(data["serviceAccountJson"])["token_uri"]
    registry = Registry()
    registry.register(provider_for(servers, case, token))
    bucket = case.bucket or (servers.gcs if case.form == "sa" else servers.s3).buckets[0]
    object_key = f"probes/{PROBE_DIRECTORY}/{uuid.uuid4()}.txt"

    started = time.monotonic()
    outcome = verify(
        gcs_spec(bucket, mode=case.mode, timeout=case.timeout),
        data,
        secret_uid=SECRET_UID,
        object_key=object_key,
        allow_private=True,
        now=NOW,
        registry=registry,
    )
    elapsed = time.monotonic() - started

    assert outcome.reason == case.reason, outcome
    assert outcome.verified is (case.reason == Reason.ProbeSucceeded)
    assert case.says in outcome.message, outcome.message
    if case.steps is None:
        assert outcome.last_probe() is None  # refused before any connection
    else:
        assert steps_of(outcome) == case.steps, outcome
    if case.reason == Reason.AccessDenied and case.steps == (OK, FAILED):
        assert "mode Write" in outcome.message
    if case.reason == Reason.Timeout:
        assert elapsed < 2.5, elapsed  # the 1s deadline held, whatever the server did
    shown = messages(outcome) + repr(outcome)
    for value in secret_values(data):
        assert value not in shown, f"a Secret value leaked into: {shown}"


def run_key_file(gcs: GcsServer, account: str, *, mode: str = "WriteDelete") -> tuple[Outcome, str]:
    """A probe with `account`'s key file against the GCS server; (outcome, object key)."""
    registry = Registry()
    provider = GoogleCloudStorageProvider(
        api_endpoint=gcs.endpoint, token_uris=frozenset({gcs.token_uri})
    )
    registry.register(provider)
    object_key = f"probes/{PROBE_DIRECTORY}/{uuid.uuid4()}.txt"
    data = {"serviceAccountJson": json.dumps(gcs.key_file(account)).encode()}
    outcome = verify(
        gcs_spec(gcs.buckets[0], mode=mode),
        data,
        secret_uid=SECRET_UID,
        object_key=object_key,
        allow_private=True,
        now=NOW,
        registry=registry,
    )
    return outcome, object_key


@pytest.mark.parametrize(
    ("account", "delete_status"), [("admin", "200"), ("writer", "403")], ids=["admin", "writer"]
)
def test_each_request_is_made_once(gcs: GcsServer, account: str, delete_status: str) -> None:
    """A token, an upload, a delete: no retry, no second token after a 403, and none of
    the bucket lookups the SDK makes in a thread of its own for its telemetry. The next
    probe reuses the token: an upload and a delete only."""
    shared_tokens().clear()
    before = len(gcs.requests())
    outcome, object_key = run_key_file(gcs, account)
    again, second_key = run_key_file(gcs, account)
    time.sleep(0.2)  # a request from a background thread would have arrived by now
    made = [line.split()[1:] for line in gcs.requests()[before:]]
    bucket = gcs.buckets[0]

    def calls(key: str) -> list[list[str]]:
        return [
            ["POST", f"/upload/storage/v1/b/{bucket}/o", account, "200"],
            [
                "DELETE",
                f"/storage/v1/b/{bucket}/o/{urllib.parse.quote(key, safe='')}",
                account,
                delete_status,
            ],
        ]

    assert made == [["POST", "/token", account, "200"], *calls(object_key), *calls(second_key)]
    assert outcome.verified is again.verified is (delete_status == "200")


def test_a_cached_token_the_server_refuses_is_exchanged_again(gcs: GcsServer) -> None:
    """A storage 401 (the token revoked) drops it from the cache: the next probe asks for
    a new one, and verifies."""
    shared_tokens().clear()
    data = json.dumps(gcs.key_file("admin"))
    first, _ = run_key_file(gcs, "admin")
    key = parse_service_account_key(data, token_uris=frozenset({gcs.token_uri})).cache_key()
    cached = shared_tokens().get(key)
    assert isinstance(cached, AccessToken)
    shared_tokens().put(key, AccessToken("ya29.revoked", cached.expires_at), cached.expires_at)
    before = len(gcs.requests())
    refused, _ = run_key_file(gcs, "admin")
    renewed, _ = run_key_file(gcs, "admin")
    tokens = [line for line in gcs.requests()[before:] if " /token " in line]
    assert first.verified and renewed.verified
    assert refused.reason == Reason.AuthenticationFailed, refused
    assert len(tokens) == 1


def test_write_mode_leaves_the_probe_object_and_write_delete_does_not(gcs: GcsServer) -> None:
    """Read back with google-cloud-storage's own service-account credentials, as an admin."""
    from google.cloud import storage  # type: ignore[import-untyped]
    from google.oauth2 import service_account

    deleted, _ = run_key_file(gcs, "admin")
    kept_outcome, kept = run_key_file(gcs, "writer", mode="Write")
    assert deleted.verified and kept_outcome.verified
    credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        gcs.key_file("admin"), scopes=["https://www.googleapis.com/auth/devstorage.read_write"]
    )
    client = storage.Client(
        project="test", credentials=credentials, client_options={"api_endpoint": gcs.endpoint}
    )
    bucket = client.bucket(gcs.buckets[0])
    names = {blob.name for blob in client.list_blobs(bucket, prefix=f"probes/{PROBE_DIRECTORY}/")}
    assert kept in names and deleted.object_key not in names
    blob = bucket.blob(kept)
    assert b"not data" in blob.download_as_bytes()
    blob.reload()
    assert blob.metadata == {"purpose": "destination-operator-probe"}


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "Anonymous caller does not have storage.objects.create access"),
        ("Bearer ya29.forged-token-value", "Invalid Credentials"),
    ],
    ids=["no-token", "unknown-token"],
)
def test_the_server_refuses_a_call_without_a_valid_token(
    gcs: GcsServer, authorization: str | None, message: str
) -> None:
    url = f"{gcs.endpoint}/upload/storage/v1/b/{gcs.buckets[0]}/o?uploadType=media&name=x"
    call = urllib.request.Request(url, data=b"x", method="POST")
    if authorization:
        call.add_header("Authorization", authorization)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(call, timeout=5)
    assert refused.value.code == 401
    error = json.loads(refused.value.read())["error"]
    assert error["code"] == 401 and error["message"].startswith(message)


def test_the_operator_serves_gcs_with_google_endpoints_only() -> None:
    """The shipped provider: registered, no endpoint for the guard, Google's token URIs only."""
    provider = default_registry().get(DestinationType.GoogleCloudStorage)
    assert isinstance(provider, GoogleCloudStorageProvider)
    assert provider.endpoints(gcs_spec("destinations")) == []
    assert provider.secret_keys.alternatives == (
        ("serviceAccountJson",),
        ("hmacAccessKey", "hmacSecret"),
    )


def test_without_the_sdk_the_probe_names_the_extra(
    gcs: GcsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "google.cloud.storage", None)  # as if not installed
    before = settled_request_count(gcs)
    outcome, _ = run_key_file(gcs, "admin")
    assert outcome.reason == ProviderUnavailableError.reason
    assert "pip install 'destination-operator[gcs]'" in outcome.message
    assert steps_of(outcome) == (FAILED, SKIPPED)
    assert settled_request_count(gcs) == before, gcs.requests()[before:]  # nothing was sent


def settled_request_count(gcs: GcsServer) -> int:
    """Lines in the server's request log once it stops growing: the front writes a line
    after it answers, so the previous test's last line may land a moment late."""
    count = len(gcs.requests())
    while True:
        time.sleep(0.3)
        now = len(gcs.requests())
        if now == count:
            return count
        count = now
