"""The Webhook provider against an HTTPS receiver on loopback that checks its tokens.

Every outcome of TESTING.md through `probe.verify.verify` (the code path the
operator runs), in one table: success, wrong tokens, a token without the
scope to post (write refused), a receiver that is missing, gone, broken or
moved, an unreachable port, certificates nobody (or only the system) trusts,
servers that never answer or trickle, and the checks made before any
connection (Secret, keys, endpoint guard). A webhook keeps nothing to delete,
so "delete refused" cannot happen: every case checks the Delete step is
Skipped. Each case checks that no value of its Secret appears in any message.
"""

from __future__ import annotations

import datetime
import time
import uuid
from dataclasses import dataclass, field

import pytest
from webhookserver import (
    BEARER_READONLY,
    BEARER_WRITE,
    LOCATION_SECRET,
    VERIFICATION_TOKEN,
    WebhookReceiver,
)

from destination_operator.api.spec import DestinationSpec, parse_spec
from destination_operator.api.status import Reason, StepOutcome
from destination_operator.outcome import Outcome
from destination_operator.probe.verify import verify
from destination_operator.providers.base import PROBE_DIRECTORY
from destination_operator.providers.registry import Registry
from destination_operator.providers.webhook import (
    EVENT_TYPE,
    WebhookProvider,
    redirect_target,
)

pytest_plugins = ["webhook_fixtures"]

NOW = datetime.datetime(2026, 11, 22, 7, 0, tzinfo=datetime.UTC)
CANARY = "canary-SECRET-never-show-me-3e8b51d0"
SECRET_UID = "0c6a2f3e-5b7d-4e21-9a8f-7d3c1b2e4f60"

TOKEN = {"verificationToken": VERIFICATION_TOKEN}
WITH_BEARER = {**TOKEN, "bearerToken": BEARER_WRITE}


def webhook_spec(url: str, *, mode: str, timeout: str, secret: str = "hook") -> DestinationSpec:
    """A Webhook spec as a user would write it (Production: https required)."""
    return parse_spec(
        {
            "type": "Webhook",
            "webhook": {"url": url},
            "credentials": {"secretRef": {"name": secret}},
            "verification": {"mode": mode, "timeout": timeout},
        }
    )


@dataclass(frozen=True)
class Case:
    """One probe and what it must report."""

    id: str
    reason: Reason
    secret: dict[str, str] | None = field(default_factory=lambda: dict(TOKEN))
    path: str = "/hook"
    server: str = "webhook_receiver"  # the fixture whose port the URL points at
    trusted: bool = True  # the provider trusts the receiver's CA
    allow_private: bool = True
    mode: str = "WriteDelete"
    timeout: str = "5s"
    write: StepOutcome | None = StepOutcome.Failed  # None: no connection made
    says: tuple[str, ...] = ()  # words the message must contain
    received: int | None = None  # requests the receiver must have got from this probe


CASES = [
    Case(
        "success",
        Reason.ProbeSucceeded,
        write=StepOutcome.Succeeded,
        received=1,
    ),
    Case(
        "success-with-bearer-in-write-mode",
        Reason.ProbeSucceeded,
        secret=dict(WITH_BEARER),
        path="/gated/hook",
        mode="Write",
        write=StepOutcome.Succeeded,
        received=1,
    ),
    Case(
        "success-without-echo",
        Reason.ProbeSucceeded,
        path="/quiet",
        write=StepOutcome.Succeeded,
        received=1,
    ),
    Case(
        "wrong-verification-token",
        Reason.AuthenticationFailed,
        secret={"verificationToken": CANARY},
        says=("401", "verificationToken"),
        received=1,
    ),
    Case(
        "wrong-bearer-token",
        Reason.AuthenticationFailed,
        secret={**TOKEN, "bearerToken": CANARY},
        path="/gated/hook",
        says=("401", "bearerToken"),
        received=1,
    ),
    Case(
        "bearer-required-but-absent",
        Reason.AuthenticationFailed,
        path="/gated/hook",
        says=("401", "asks for a bearer token", "bearerToken"),
        received=1,
    ),
    Case(
        "write-refused-token-without-scope",
        Reason.AccessDenied,
        secret={**TOKEN, "bearerToken": BEARER_READONLY},
        path="/gated/hook",
        says=("403",),
        received=1,
    ),
    Case(
        "receiver-missing",
        Reason.ProbeFailed,
        path="/no-such-hook",
        says=("404", "spec.webhook.url"),
        received=1,
    ),
    Case(
        "receiver-gone",
        Reason.ProbeFailed,
        path="/gone",
        says=("410", "spec.webhook.url"),
        received=1,
    ),
    Case(
        "receiver-broken",
        Reason.ProbeFailed,
        path="/broken",
        says=("503",),
        received=1,
    ),
    Case(
        "redirect-is-not-followed",
        Reason.ProbeFailed,
        path="/moved",
        says=("308", "redirect", "/new-home", "not followed"),
        received=1,  # the new home was never asked
    ),
    Case(
        "unreachable",
        Reason.EndpointUnreachable,
        server="closed_port",
    ),
    Case(
        "certificate-nobody-trusts",
        Reason.TLSError,
        server="untrusted_tls_server",
        says=("certificate",),
    ),
    Case(
        "test-ca-not-in-the-system-trust-store",
        Reason.TLSError,
        trusted=False,
        says=("certificate",),
        received=0,
    ),
    Case(
        "server-never-answers",
        Reason.Timeout,
        server="silent_server",
        timeout="1s",
    ),
    Case(
        "handshake-trickles",
        Reason.Timeout,
        server="stuck_handshake_server",
        timeout="1s",
    ),
    Case(
        "answer-trickles",
        Reason.Timeout,
        path="/slow",
        timeout="1s",
        received=1,
    ),
    Case(
        "secret-missing-the-token",
        Reason.SecretKeyMissing,
        secret={"bearerToken": CANARY, "verificationtoken": CANARY},
        write=None,
        says=("verificationToken", "'hook'"),
        received=0,
    ),
    Case(
        "token-a-header-cannot-carry",
        Reason.SecretKeyInvalid,
        secret={"verificationToken": f"{CANARY}\r\nX-Injected: 1"},
        write=None,
        says=("verificationToken", "line break", "'hook'"),
        received=0,
    ),
    Case(
        "token-beyond-ascii",
        Reason.SecretKeyInvalid,
        secret={"verificationToken": f"{CANARY}\u00e9"},
        write=None,
        says=("verificationToken", "printable ASCII"),
        received=0,
    ),
    Case(
        "secret-not-found",
        Reason.SecretNotFound,
        secret=None,
        write=None,
        says=("'hook'",),
        received=0,
    ),
    Case(
        "loopback-refused-without-private-allowance",
        Reason.EndpointBlocked,
        secret={"verificationToken": CANARY},
        allow_private=False,
        write=None,
        received=0,
    ),
]


def messages(outcome: Outcome) -> list[str]:
    """Every message the outcome carries (condition message and step messages)."""
    return [outcome.message, *(step.message for step in outcome.steps), repr(outcome)]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_webhook_probe(
    case: Case,
    request: pytest.FixtureRequest,
    webhook_receiver: WebhookReceiver,
    webhook_registry: Registry,
    system_trust_registry: Registry,
) -> None:
    server = request.getfixturevalue(case.server)
    port = server if isinstance(server, int) else server.port
    probe_key = f"{PROBE_DIRECTORY}/{uuid.uuid4()}.txt"
    secret = None if case.secret is None else {k: v.encode() for k, v in case.secret.items()}

    started = time.monotonic()
    outcome = verify(
        webhook_spec(f"https://127.0.0.1:{port}{case.path}", mode=case.mode, timeout=case.timeout),
        secret,
        secret_uid=SECRET_UID,
        object_key=probe_key,
        allow_private=case.allow_private,
        now=NOW,
        registry=webhook_registry if case.trusted else system_trust_registry,
    )
    elapsed = time.monotonic() - started

    assert outcome.reason == case.reason, outcome
    assert outcome.verified is (case.reason == Reason.ProbeSucceeded)
    if outcome.verified:  # no "wrote and deleted probe object": a webhook keeps none
        assert outcome.message.startswith("verification request delivered: the receiver answered")
    for word in case.says:
        assert word in outcome.message, outcome.message
    for value in (case.secret or {}).values():
        for text in messages(outcome):
            assert value not in text and value.strip() not in text, text
    assert LOCATION_SECRET not in " ".join(messages(outcome))
    if case.write is None:
        assert outcome.last_probe() is None  # refused before any connection
    else:
        assert [(s.name.value, s.outcome) for s in outcome.steps] == [
            ("Write", case.write),
            ("Delete", StepOutcome.Skipped),
        ]
        assert "nothing to delete" in outcome.steps[1].message
    if case.received is not None:
        assert len(webhook_receiver.received(probe_key)) == case.received
    if case.reason == Reason.Timeout:
        assert elapsed < 2.5, elapsed  # the 1 s deadline holds, whatever the server does


def test_the_request_is_a_verification_event_with_the_tokens_in_headers(
    webhook_receiver: WebhookReceiver, webhook_registry: Registry
) -> None:
    probe_key = f"{PROBE_DIRECTORY}/{uuid.uuid4()}.txt"
    secret = {k: v.encode() for k, v in WITH_BEARER.items()}
    outcome = verify(
        webhook_spec(webhook_receiver.url("/gated/hook"), mode="WriteDelete", timeout="5s"),
        secret,
        secret_uid=SECRET_UID,
        object_key=probe_key,
        allow_private=True,
        now=NOW,
        registry=webhook_registry,
    )
    assert outcome.verified, outcome
    assert "echoed the challenge" in outcome.steps[0].message
    [received] = webhook_receiver.received(probe_key)
    assert (received.method, received.path, received.status) == ("POST", "/gated/hook", 200)
    assert received.headers["verification-token"] == VERIFICATION_TOKEN
    assert received.headers["authorization"] == f"Bearer {BEARER_WRITE}"
    assert received.headers["content-type"] == "application/json"
    event = received.event()
    assert event["type"] == EVENT_TYPE
    assert uuid.UUID(event["challenge"])
    assert VERIFICATION_TOKEN.encode() not in received.body  # the token is in the header only


def test_the_receiver_name_is_checked_against_its_certificate(
    webhook_receiver: WebhookReceiver, webhook_registry: Registry
) -> None:
    """`localhost` is in the certificate and passes; a name that is not in it fails."""
    secret = {k: v.encode() for k, v in TOKEN.items()}

    def probe(host: str) -> Outcome:
        return verify(
            webhook_spec(webhook_receiver.url(host=host), mode="Write", timeout="5s"),
            secret,
            secret_uid=SECRET_UID,
            object_key=f"{PROBE_DIRECTORY}/{uuid.uuid4()}.txt",
            allow_private=True,
            now=NOW,
            registry=webhook_registry,
            resolve=lambda name, port: ["127.0.0.1"],
        )

    assert probe("localhost").verified
    refused = probe("hooks.example.test")
    assert refused.reason == Reason.TLSError
    assert "hooks.example.test" in refused.message or "certificate" in refused.message


def test_endpoints_is_the_url_the_author_chose() -> None:
    spec = webhook_spec("https://hooks.example.com/in?x=1", mode="Write", timeout="5s")
    assert WebhookProvider().endpoints(spec) == ["https://hooks.example.com/in?x=1"]


@pytest.mark.parametrize(
    ("location", "shown"),
    [
        ("https://new.example.com/in?sig=abc#f", "https://new.example.com/in"),
        ("/elsewhere?token=abc", "https://hooks.example.com:8443/elsewhere"),
        ("https://user:pw@new.example.com:9443/in", "https://new.example.com:9443/in"),
        ("https://[::1]:9443/in?a=b", "https://[::1]:9443/in"),
    ],
)
def test_a_redirect_is_shown_without_query_or_user_info(location: str, shown: str) -> None:
    assert redirect_target("https://hooks.example.com:8443/in", location) == shown
