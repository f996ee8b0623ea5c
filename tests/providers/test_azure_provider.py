"""The Azure Blob Storage provider against Azurite, through `probe.verify.verify`.

One table of cases, each run with the Secret holding an account key, a SAS
token or a connection string: success, wrong credentials, missing container,
write or delete refused (SAS permissions), an expired SAS (refused before any
connection, its `se` read from the token), unreachable port, a
certificate nobody trusts, a server that never answers and one that trickles,
a Secret without any of the keys, and a connection string that points
elsewhere than the spec. Azurite checks Shared Key and SAS signatures, SAS
expiry and SAS permissions for its one account, whose key the fixture makes.
Every case checks the Reason, the steps, how many requests reached the
server, and that no Secret value (nor the key or signature inside one) shows
in any message or log record.
"""

from __future__ import annotations

import base64
import datetime
import logging
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import pytest
from azure.storage.blob import generate_container_sas

from azurite import DEFAULT_ACCOUNT as AZURITE_ACCOUNT
from azurite import DEFAULT_CONTAINERS, Azurite
from destination_operator.api.spec import DestinationSpec, parse_spec
from destination_operator.api.status import Reason, StepOutcome
from destination_operator.cli import NOISY_LOGGERS
from destination_operator.outcome import Outcome
from destination_operator.probe.verify import verify
from destination_operator.providers.azure import AzureBlobStorageProvider
from destination_operator.providers.base import PROBE_DIRECTORY
from destination_operator.providers.registry import default_registry

pytest_plugins = ["azure_fixtures"]

CANARY = base64.b64encode(b"canary-SECRET-never-show-me-4f8e2a1c".ljust(64, b"~")).decode()
"""A well-formed account key that no account has: the wrong credential of the table."""
SECRET_UID = "0b6f3c1e-2d4a-4f7b-9e8c-5a1d2c3b4e5f"
AZURITE_CONTAINER = DEFAULT_CONTAINERS[0]
SLACK = 1.5  # a timed-out probe returns within its timeout plus this

S = StepOutcome.Succeeded
F = StepOutcome.Failed
K = StepOutcome.Skipped

SecretMaker = Callable[["World", str], dict[str, bytes]]


# --- what the Secret holds ---------------------------------------------------------------------


def sas(
    world: World,
    permission: str = "cwd",
    *,
    key: str | None = None,
    container: str = AZURITE_CONTAINER,
    expires_in: float = 3600,
) -> str:
    """A container SAS made by the SDK, as `az storage container generate-sas` prints it."""
    now = datetime.datetime.now(datetime.UTC)
    return generate_container_sas(
        AZURITE_ACCOUNT,
        container,
        account_key=key or world.azurite.key,
        permission=permission,
        start=now - datetime.timedelta(hours=2),
        expiry=now + datetime.timedelta(seconds=expires_in),
    )


def account_key(key: str | None = None) -> SecretMaker:
    return lambda world, endpoint: {"accountKey": (key or world.azurite.key).encode()}


def sas_token(permission: str = "cwd", **options: Any) -> SecretMaker:
    return lambda world, endpoint: {"sasToken": ("?" + sas(world, permission, **options)).encode()}


def connection_string(
    *, key: str | None = None, account: str = AZURITE_ACCOUNT, elsewhere: bool = False
) -> SecretMaker:
    def make(world: World, endpoint: str) -> dict[str, bytes]:
        blob = "http://127.0.0.1:1/other" if elsewhere else endpoint
        text = (
            f"DefaultEndpointsProtocol=http;AccountName={account};"
            f"AccountKey={key or world.azurite.key};BlobEndpoint={blob};"
        )
        return {"connectionString": text.encode()}

    return make


def sas_connection_string(permission: str = "cwd", **options: Any) -> SecretMaker:
    def make(world: World, endpoint: str) -> dict[str, bytes]:
        token = sas(world, permission, **options)
        text = f"BlobEndpoint={endpoint};SharedAccessSignature={token}"
        return {"connectionString": text.encode()}

    return make


def secret_parts(data: dict[str, bytes]) -> set[str]:
    """Every value in the Secret, and the keys and signatures inside them."""
    parts = {CANARY}
    for raw in data.values():
        value = raw.decode().strip()
        parts.add(value)
        for field in value.split(";"):
            name, _, inner = field.partition("=")
            if name.lower() in ("accountkey", "sharedaccesssignature") and inner:
                parts.add(inner)
        for query in (value.lstrip("?"), value.partition("SharedAccessSignature=")[2]):
            parts.update(parse_qs(query).get("sig", []))  # decoded
            parts.update(p[4:] for p in query.split("&") if p.startswith("sig="))  # as sent
    return {part for part in parts if part}


# --- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    secret: SecretMaker
    reason: Reason
    steps: tuple[StepOutcome, ...]
    says: str = ""  # text the outcome's message (or, on success, the Write step's) contains
    server: str = "azurite"  # or the fixture of a misbehaving server
    account: str = AZURITE_ACCOUNT
    container: str = AZURITE_CONTAINER
    mode: str = "WriteDelete"
    timeout: str = "5s"
    product: str | None = None
    allow_private: bool = True


def every_kind() -> list[Case]:
    """The cases of the rules, once per kind of credential."""
    cases: list[Case] = []
    for kind in ("accountKey", "sasToken", "connectionString"):
        good = {
            "accountKey": account_key(),
            "sasToken": sas_token(),
            "connectionString": connection_string(),
        }[kind]
        wrong = {
            "accountKey": account_key(CANARY),
            "sasToken": sas_token(key=CANARY),
            "connectionString": connection_string(key=CANARY),
        }[kind]
        # A SAS is signed for one container: this one is signed for the missing one.
        for_missing = sas_token(container="no-such-container") if kind == "sasToken" else good
        cases += [
            Case(f"{kind}-success", good, Reason.ProbeSucceeded, (S, S), says=kind),
            Case(f"{kind}-write-mode", good, Reason.ProbeSucceeded, (S, K), mode="Write"),
            Case(f"{kind}-wrong-credentials", wrong, Reason.AuthenticationFailed, (F, K)),
            Case(
                f"{kind}-container-missing",
                for_missing,
                Reason.BucketNotFound,
                (F, K),
                says="ContainerNotFound",
                container="no-such-container",
            ),
            Case(
                f"{kind}-unreachable",
                good,
                Reason.EndpointUnreachable,
                (F, K),
                says="refused",
                server="closed_port",
            ),
            Case(
                f"{kind}-untrusted-tls",
                good,
                Reason.TLSError,
                (F, K),
                says="certificate",
                server="untrusted_tls_server",
            ),
            Case(
                f"{kind}-silent-server",
                good,
                Reason.Timeout,
                (F, K),
                server="silent_server",
                timeout="1s",
            ),
            Case(
                f"{kind}-trickling-server",
                good,
                Reason.Timeout,
                (F, K),
                server="trickle_server",
                timeout="1s",
            ),
        ]
    return cases


CASES: list[Case] = [
    *every_kind(),
    # Restricted credentials: SAS permissions, as a token and inside a connection string.
    Case("sasToken-write-refused", sas_token("r"), Reason.AccessDenied, (F, K), says="Permission"),
    Case(
        "sasToken-delete-refused",
        sas_token("cw"),
        Reason.AccessDenied,
        (S, F),
        says="use verification mode Write",
    ),
    Case(
        "sasToken-delete-refused-in-write-mode",
        sas_token("cw"),
        Reason.ProbeSucceeded,
        (S, K),
        mode="Write",
    ),
    Case(
        "connectionString-sas-delete-refused",
        sas_connection_string("cw"),
        Reason.AccessDenied,
        (S, F),
        says="DeleteBlob: AuthorizationPermissionMismatch",
    ),
    Case("connectionString-sas-success", sas_connection_string(), Reason.ProbeSucceeded, (S, S)),
    # An expiry the SAS itself states (se) has passed: refused before any connection.
    Case(
        "sasToken-expired",
        sas_token(expires_in=-3600),
        Reason.AuthenticationFailed,
        (),
        says="the SAS token in the Secret's sasToken expired at",
    ),
    Case(
        "connectionString-sas-expired",
        sas_connection_string(expires_in=-3600),
        Reason.AuthenticationFailed,
        (),
        says="the SharedAccessSignature in the Secret's connectionString expired at",
    ),
    # A connection string cannot move the data: refused before any connection.
    Case(
        "connectionString-other-account",
        connection_string(account="otheraccount"),
        Reason.InvalidSpec,
        (),
        says="another storage account",
    ),
    Case(
        "connectionString-other-endpoint",
        connection_string(elsewhere=True),
        Reason.InvalidSpec,
        (),
        says="another blob endpoint",
    ),
    # The account is part of the address: Azurite answers 404 for one it does not have.
    Case(
        "accountKey-account-missing",
        account_key(),
        Reason.BucketNotFound,
        (F, K),
        says="ResourceNotFound",
        account="noaccount",
    ),
    Case("accountKey-not-base64", account_key("not base64!"), Reason.AuthenticationFailed, ()),
    Case(
        "accountKey-databricks",
        account_key(),
        Reason.ProbeSucceeded,
        (S, S),
        says="Databricks reads this container through the dfs endpoint",
        product="Databricks",
    ),
    Case(
        "accountKey-loopback-blocked",
        account_key(),
        Reason.EndpointBlocked,
        (),
        allow_private=False,
    ),
    # A Secret with none of the three keys (names that are almost right).
    Case(
        "secret-without-any-key",
        lambda world, endpoint: {"accountkey": CANARY.encode(), "sas": CANARY.encode()},
        Reason.SecretKeyMissing,
        (),
        says="has none of the keys accountKey, sasToken or connectionString",
    ),
    Case(
        "secret-with-empty-values",
        lambda world, endpoint: {"accountKey": b" \n", "sasToken": b"", "note": CANARY.encode()},
        Reason.SecretKeyMissing,
        (),
        says="has none of the keys accountKey, sasToken or connectionString",
    ),
]


@dataclass
class World:
    """Azurite, and the misbehaving servers a case asks for (function-scoped fixtures)."""

    azurite: Azurite
    request: pytest.FixtureRequest

    def endpoint(self, case: Case) -> str:
        if case.server == "azurite":
            return f"http://127.0.0.1:{self.azurite.port}/{case.account}"
        server = self.request.getfixturevalue(case.server)
        port = server if isinstance(server, int) else server.port
        scheme = "https" if case.server == "untrusted_tls_server" else "http"
        return f"{scheme}://127.0.0.1:{port}/{case.account}"

    def accepted(self, case: Case) -> int:
        return int(self.request.getfixturevalue(case.server).accepted)


def azure_spec(case: Case, endpoint: str | None) -> DestinationSpec:
    member: dict[str, Any] = {
        "storageAccountName": case.account,
        "containerName": case.container,
    }
    if endpoint:
        member["endpoint"] = endpoint
    if case.product:
        member["product"] = case.product
    return parse_spec(
        {
            "type": "AzureBlobStorage",
            "environment": "Development",
            "azureBlobStorage": member,
            "pathPrefix": "probes/",
            "credentials": {"secretRef": {"name": "creds"}},
            "verification": {"mode": case.mode, "timeout": case.timeout},
        }
    )


def probe_object_key() -> str:
    return f"probes/{PROBE_DIRECTORY}/{uuid.uuid4()}.txt"


def run(
    case: Case, world: World, now: datetime.datetime | None = None
) -> tuple[Outcome, dict[str, bytes], str, float]:
    """Verify `case` at `now` (the clock's time unless given; SAS expiries are real times)."""
    endpoint = world.endpoint(case)
    data = case.secret(world, endpoint)
    object_key = probe_object_key()
    started = time.monotonic()
    outcome = verify(
        azure_spec(case, endpoint),
        data,
        secret_uid=SECRET_UID,
        object_key=object_key,
        allow_private=case.allow_private,
        now=now or datetime.datetime.now(datetime.UTC),
    )
    return outcome, data, object_key, time.monotonic() - started


def requests_for(azurite: Azurite, object_key: str, *, at_least: int) -> list[str]:
    """Azurite's access-log lines for `object_key`; it writes them just after answering."""
    deadline = time.monotonic() + 2
    while True:
        seen = [line for line in azurite.requests() if object_key in line]
        if len(seen) >= at_least or time.monotonic() > deadline:
            return seen
        time.sleep(0.02)


def quiet_like_the_operator(caplog: pytest.LogCaptureFixture) -> None:
    """Capture every log record at DEBUG, with the loggers the operator caps held at INFO."""
    caplog.set_level(logging.DEBUG)
    for name in NOISY_LOGGERS:
        caplog.set_level(logging.INFO, logger=name)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_verify_against_azurite(
    case: Case, azurite: Azurite, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    quiet_like_the_operator(caplog)
    world = World(azurite, request)
    outcome, data, object_key, elapsed = run(case, world)

    assert outcome.reason == case.reason, outcome
    assert outcome.verified == (case.reason == Reason.ProbeSucceeded)
    assert tuple(step.outcome for step in outcome.steps) == case.steps, outcome.steps
    if case.says:
        said = outcome.steps[0].message if outcome.verified else outcome.message
        assert case.says in said, said

    shown = [outcome.message, repr(outcome), caplog.text, *(s.message for s in outcome.steps)]
    for value in secret_parts(data):
        assert not any(value in text for text in shown), "a Secret value was shown"

    if case.server == "azurite":
        ran = sum(1 for step in case.steps if step != K)
        seen = requests_for(azurite, object_key, at_least=ran)
        assert len(seen) == ran, seen  # one attempt per step: no retries
    elif case.server in ("silent_server", "trickle_server"):
        assert elapsed < 1 + SLACK, elapsed
        assert world.accepted(case) == 1  # one attempt: no SDK retries


# --- what the table does not show ----------------------------------------------------------------


def spec_with(endpoint: str | None, product: str | None = None) -> DestinationSpec:
    return azure_spec(
        Case("spec", account_key(), Reason.ProbeSucceeded, (), product=product), endpoint
    )


def test_only_an_endpoint_the_author_chose_is_guarded() -> None:
    """Azure's own endpoint is not guarded (Private Link resolves it to private addresses)."""
    provider = AzureBlobStorageProvider()
    assert provider.endpoints(spec_with(None)) == []
    chosen = "http://127.0.0.1:10000/probeaccount/"
    assert provider.endpoints(spec_with(chosen)) == ["http://127.0.0.1:10000/probeaccount"]
    dfs = "https://probeaccount.dfs.core.chinacloudapi.cn"
    assert provider.endpoints(spec_with(dfs, product="Databricks")) == [
        "https://probeaccount.blob.core.chinacloudapi.cn"
    ]


def test_provider_is_registered() -> None:
    assert isinstance(default_registry().get("AzureBlobStorage"), AzureBlobStorageProvider)


def test_write_delete_leaves_nothing_and_write_leaves_the_object(
    azurite: Azurite, request: pytest.FixtureRequest
) -> None:
    world = World(azurite, request)
    gone, _, gone_key, _ = run(Case("gone", account_key(), Reason.ProbeSucceeded, ()), world)
    kept, _, kept_key, _ = run(
        Case("kept", sas_token("cw"), Reason.ProbeSucceeded, (), mode="Write"), world
    )
    assert gone.verified and kept.verified
    with azurite.service_client() as service:
        container = service.get_container_client(AZURITE_CONTAINER)
        names = {blob.name for blob in container.list_blobs(name_starts_with="probes/")}
        assert kept_key in names and gone_key not in names
        blob = container.get_blob_client(kept_key)
        assert b"not data" in blob.download_blob().readall()
        assert blob.get_blob_properties().content_settings.content_type == "text/plain"


def test_a_sas_expiry_rides_in_the_outcome_and_azurite_checks_it_too(
    azurite: Azurite, request: pytest.FixtureRequest
) -> None:
    """A SAS's `se` is the outcome's expiry; with the operator's clock an hour behind, an
    expired SAS reaches Azurite, which refuses it by itself (its expiry is real)."""
    world = World(azurite, request)
    for make, where in (
        (sas_token, "the SAS token in the Secret's sasToken"),
        (sas_connection_string, "the SharedAccessSignature in the Secret's connectionString"),
    ):
        case = Case("valid", make(expires_in=86400), Reason.ProbeSucceeded, ())
        outcome, data, _, _ = run(case, world)
        assert outcome.verified, outcome
        assert outcome.expiry is not None and outcome.expiry.source == where
        left = outcome.expiry.at - datetime.datetime.now(datetime.UTC)
        assert datetime.timedelta(hours=23) < left <= datetime.timedelta(days=1)
        assert not any(part in repr(outcome.expiry) for part in secret_parts(data))

    expired = Case("expired", sas_token(expires_in=-600), Reason.AuthenticationFailed, ())
    behind = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    outcome, _, object_key, _ = run(expired, world, now=behind)
    assert outcome.reason == Reason.AuthenticationFailed and not outcome.expired
    assert [step.outcome for step in outcome.steps] == [F, K]
    assert "PutBlob" in outcome.message
    assert len(requests_for(azurite, object_key, at_least=1)) == 1


def test_without_the_sdk_the_extra_is_named(
    azurite: Azurite, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "azure.storage.blob", None)  # as if not installed
    case = Case("no-sdk", account_key(), Reason.ProviderUnavailable, ())
    outcome, _, object_key, _ = run(case, World(azurite, request))
    assert outcome.reason == Reason.ProviderUnavailable, outcome
    assert "pip install 'destination-operator[azure]'" in outcome.message
    assert requests_for(azurite, object_key, at_least=0) == []
