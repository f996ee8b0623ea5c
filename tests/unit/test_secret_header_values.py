"""A Secret value with a line break or a control character inside is refused by its key.

Each provider reads the values it sends in a header (or a URL, or a signature)
through `providers.base.header_value`: the ends are stripped (a file given to
`kubectl create secret --from-file` ends in a newline), and a line break or
control character left inside is `SecretKeyInvalid`, Stalled like a missing
key, before any connection. Without it, `http.client` raises an error whose
text quotes the value, or, for a value like `X\\r\\n X-Injected: yes`, sends
it as an obs-fold continuation line: a header of the Secret author's making.

Every case goes through `probe.verify.verify` (the code path the operator runs)
towards a loopback server that counts the connections it accepts.
"""

from __future__ import annotations

import base64
import datetime
import json
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from destination_operator import conditions, decide
from destination_operator.api.spec import DestinationSpec, parse_spec
from destination_operator.api.status import ConditionType, Reason
from destination_operator.decide import Memory, Observed, Policy, SecretView
from destination_operator.errors import SecretKeyInvalidError
from destination_operator.outcome import Outcome
from destination_operator.probe.verify import verify
from destination_operator.providers.base import header_problem, header_value
from destination_operator.providers.gcs import HMAC_KEYS, GoogleCloudStorageProvider
from destination_operator.providers.registry import Registry, default_registry
from destination_operator.providers.s3 import (
    AmazonS3Provider,
    OracleCloudStorageProvider,
    S3Credentials,
)

NOW = datetime.datetime(2026, 11, 25, 7, 0, tzinfo=datetime.UTC)
SECRET_UID = "3d5e7a91-0c2b-4f6d-8e1a-b4c9d2f07a63"
CANARY = "canary-SECRET-never-show-me-5c1d8e27"


# --- a loopback server that counts what reaches it ----------------------------------------------


class Recorder(ThreadingHTTPServer):
    """Answers every request with a 2xx and an empty body; counts accepted connections and
    keeps each request's method, path and headers."""

    daemon_threads = True

    def __init__(self) -> None:
        self.accepted = 0
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                recorder.requests.append((self.command, self.path, dict(self.headers.items())))
                # Azure's SDK wants 201 for a write, 202 for a delete; the others take any 2xx.
                self.send_response({"PUT": 201, "DELETE": 202}.get(self.command, 200))
                self.send_header("Content-Length", "0")
                self.send_header("ETag", '"0123456789abcdef"')
                self.send_header("Connection", "close")
                self.end_headers()

            do_PUT = do_POST = do_DELETE = do_GET = do_HEAD = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.accepted += 1
        return True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def server() -> Iterator[Recorder]:
    recorder = Recorder()
    thread = threading.Thread(target=recorder.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        recorder.shutdown()
        recorder.server_close()


# --- each provider, each key it sends ----------------------------------------------------------

ACCOUNT = "acmereports"
ACCOUNT_KEY = base64.b64encode(b"an account key of sixty-four bytes, or near enough").decode()
SAS = "sv=2025-01-05&sr=c&sp=cwd&sig=c2lnbmF0dXJl"
S3_KEYS = {
    "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
    "secretAccessKey": "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY",
    "sessionToken": "FwoGZXIvYXdzEXAMPLE-session-token",
}
OSS_KEYS = {"accessKeyId": "LTAI5tEXAMPLEkeyid", "accessKeySecret": "oss-example-key-secret"}
WEBHOOK_KEYS = {
    "verificationToken": "verification-token-example",
    "bearerToken": "bearer-token-example",
}


def _spec(kind: str, member: str, fields: dict[str, Any]) -> DestinationSpec:
    return parse_spec(
        {
            "type": kind,
            "environment": "Development",
            member: fields,
            "credentials": {"secretRef": {"name": "creds"}},
            "verification": {"timeout": "5s"},
        }
    )


def _overridden(endpoint: str) -> Registry:
    registry = Registry()
    registry.register(AmazonS3Provider(endpoint_override=endpoint))
    registry.register(OracleCloudStorageProvider(endpoint_override=endpoint))
    return registry


def _default(endpoint: str) -> Registry:
    return default_registry()


@dataclass(frozen=True)
class Slot:
    """One key of one provider: how a Secret holding `value` there looks, and where it goes."""

    kind: str
    key: str  # the Secret key the message must name
    spec: Callable[[str], DestinationSpec]  # the server's URL -> a spec aimed at it
    secret: Callable[[str, str], dict[str, str]]  # (value, the server's URL) -> the Secret
    good: str  # a value the key may hold
    registry: Callable[[str], Registry] = _default
    field: str = ""  # a connection string's field that holds the value

    @property
    def id(self) -> str:
        return "-".join(filter(None, (self.kind, self.key, self.field)))


def _with(base: dict[str, str], key: str) -> Callable[[str, str], dict[str, str]]:
    """A Secret that is `base` with `key` holding the value under test."""

    def secret(value: str, url: str) -> dict[str, str]:
        return {**base, key: value}

    return secret


def _s3_like(kind: str, member: str, fields: dict[str, Any], overridden: bool) -> list[Slot]:
    def spec(url: str) -> DestinationSpec:
        return _spec(kind, member, {**fields, "endpoint": url} if not overridden else fields)

    return [
        Slot(
            kind,
            key,
            spec,
            _with(S3_KEYS, key),
            good,
            _overridden if overridden else _default,
        )
        for key, good in S3_KEYS.items()
    ]


def _azure_spec(url: str) -> DestinationSpec:
    return _spec(
        "AzureBlobStorage",
        "azureBlobStorage",
        {
            "storageAccountName": ACCOUNT,
            "containerName": "deliveries",
            "endpoint": f"{url}/{ACCOUNT}",
        },
    )


def _connection(field: str) -> Callable[[str, str], dict[str, str]]:
    def secret(value: str, url: str) -> dict[str, str]:
        text = f"AccountName={ACCOUNT};{field}={value};BlobEndpoint={url}/{ACCOUNT}"
        return {"connectionString": text}

    return secret


def _webhook_spec(url: str) -> DestinationSpec:
    return _spec("Webhook", "webhook", {"url": f"{url}/hook"})


def _oss_spec(url: str) -> DestinationSpec:
    return _spec(
        "AlibabaOSS",
        "alibabaOSS",
        {"bucket": "destinations", "region": "oss-cn-hangzhou", "endpoint": url},
    )


SLOTS: list[Slot] = [
    *_s3_like("S3Compatible", "s3Compatible", {"bucket": "reports"}, overridden=False),
    *_s3_like("AmazonS3", "amazonS3", {"bucket": "reports", "region": "us-east-1"}, True),
    *_s3_like(
        "OracleCloudStorage",
        "oracleCloudStorage",
        {"bucket": "reports", "namespace": "tenancy-ns", "region": "us-ashburn-1"},
        True,
    ),
    *(
        Slot("AlibabaOSS", key, _oss_spec, _with(OSS_KEYS, key), good)
        for key, good in OSS_KEYS.items()
    ),
    *(
        Slot("Webhook", key, _webhook_spec, _with(WEBHOOK_KEYS, key), good)
        for key, good in WEBHOOK_KEYS.items()
    ),
    Slot("AzureBlobStorage", "accountKey", _azure_spec, _with({}, "accountKey"), ACCOUNT_KEY),
    Slot("AzureBlobStorage", "sasToken", _azure_spec, _with({}, "sasToken"), SAS),
    *(
        Slot(
            "AzureBlobStorage",
            "connectionString",
            _azure_spec,
            _connection(field),
            good,
            field=field,
        )
        for field, good in (("AccountKey", ACCOUNT_KEY), ("SharedAccessSignature", SAS))
    ),
]
SLOT_IDS = [slot.id for slot in SLOTS]

# Values with something inside that a header cannot carry; each holds the canary.
BAD = {
    "lf": f"{CANARY}\nrest-of-the-value",
    "cr": f"{CANARY}\rrest-of-the-value",
    "obs-fold": f"{CANARY}\r\n X-Injected: yes",
    "tab-lf": f"{CANARY}\t\nX-Injected: yes",
    "esc": f"{CANARY}\x1b[31mrest",
    "del": f"{CANARY}\x7frest",
    "tab": f"{CANARY}\trest",  # legal in HTTP, refused all the same (see `providers.base`)
}


def verify_with(slot: Slot, server: Recorder, secret: dict[str, str]) -> Outcome:
    """`probe.verify.verify` of the slot's Destination, aimed at `server`, with `secret`."""
    return verify(
        slot.spec(server.url),
        {key: text.encode() for key, text in secret.items()},
        secret_uid=SECRET_UID,
        object_key="probes/.destination-operator-probe/header-values.txt",
        allow_private=True,
        now=NOW,
        registry=slot.registry(server.url),
    )


def run(slot: Slot, server: Recorder, value: str) -> tuple[Outcome, dict[str, str]]:
    """The slot's key holding `value`: the outcome, and the Secret it was verified with."""
    secret = slot.secret(value, server.url)
    return verify_with(slot, server, secret), secret


def forms(value: str) -> set[str]:
    """`value` as an error text could carry it: whole, each line, repr- and JSON-quoted."""
    found = {value, repr(value), repr(value)[1:-1], repr(value.encode())[2:-1], json.dumps(value)}
    found |= {line.strip() for line in value.splitlines() if len(line.strip()) >= 4}
    return found


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
@pytest.mark.parametrize("slot", SLOTS, ids=SLOT_IDS)
def test_a_value_a_header_cannot_carry_is_refused_by_key_before_any_connection(
    slot: Slot, bad: str, server: Recorder
) -> None:
    before = server.accepted
    outcome, secret = run(slot, server, bad)
    assert outcome.reason == Reason.SecretKeyInvalid, outcome.message
    assert not outcome.verified and not outcome.probed
    assert server.accepted == before, "a connection was made"
    assert f"'{slot.key}'" in outcome.message and "Secret 'creds'" in outcome.message
    assert "contains a" in outcome.message and slot.field in outcome.message
    for value in {bad, *secret.values()}:
        for form in forms(value):
            assert form not in outcome.message, form
    assert CANARY not in outcome.message
    assert CANARY not in repr(outcome)


@pytest.mark.parametrize("slot", SLOTS, ids=SLOT_IDS)
def test_a_value_ending_in_a_newline_still_works(slot: Slot, server: Recorder) -> None:
    """As `kubectl create secret --from-file` gives it (and a file saved with CRLF)."""
    for ending in ("\n", "\r\n"):
        before = len(server.requests)
        outcome, _ = run(slot, server, slot.good + ending)
        assert outcome.reason == Reason.ProbeSucceeded, outcome.message
        assert len(server.requests) > before
        sent = server.requests[before:]
        assert not any(
            "\n" in text or "\r" in text
            for _, path, headers in sent
            for text in (path, *headers.values())
        )


def test_the_values_sent_are_the_stripped_ones(server: Recorder) -> None:
    s3 = next(slot for slot in SLOTS if slot.kind == "S3Compatible")
    before = len(server.requests)
    token = S3_KEYS["sessionToken"]
    assert verify_with(s3, server, {**S3_KEYS, "sessionToken": f"{token}\n"}).probed
    sent = [headers.get("X-Amz-Security-Token") for _, _, headers in server.requests[before:]]
    assert sent and all(value == token for value in sent)
    hook = next(slot for slot in SLOTS if slot.kind == "Webhook")
    before = len(server.requests)
    verify_with(hook, server, {key: f"{value}\r\n" for key, value in WEBHOOK_KEYS.items()})
    (_, _, headers), *_ = server.requests[before:]
    assert headers["verification-token"] == WEBHOOK_KEYS["verificationToken"]
    assert headers["Authorization"] == f"Bearer {WEBHOOK_KEYS['bearerToken']}"


# --- the helper --------------------------------------------------------------------------------

REFUSED = [
    *(chr(code) for code in range(0x00, 0x20)),  # C0, the tab included
    "\x7f",  # DEL
    *(chr(code) for code in range(0x80, 0xA0)),  # C1
    "\u2028",  # LINE SEPARATOR: str.splitlines splits there
    "\u2029",  # PARAGRAPH SEPARATOR
]


@pytest.mark.parametrize("char", REFUSED, ids=[f"U+{ord(c):04X}" for c in REFUSED])
def test_header_value_refuses_every_control_character_inside(char: str) -> None:
    with pytest.raises(SecretKeyInvalidError) as refused:
        header_value({"token": f"  abc{char}def\n"}, "token", secret_name="creds")
    assert refused.value.key == "token" and refused.value.reason == Reason.SecretKeyInvalid
    assert refused.value.message.startswith("Secret 'creds': the value of key 'token' contains a")
    assert "abc" not in refused.value.message and "def" not in refused.value.message


@pytest.mark.parametrize(
    ("char", "problem"),
    [
        ("\n", "contains a line break"),
        ("\r", "contains a line break"),
        ("\x85", "contains a line break"),
        ("\t", "contains a tab"),
        ("\x00", "contains a control character"),
        ("\x1b", "contains a control character"),
        ("\x7f", "contains a control character"),
        ("\x9b", "contains a control character"),
    ],
)
def test_header_problem_says_what_kind_of_character(char: str, problem: str) -> None:
    assert header_problem(f"a{char}b") == problem


def test_header_value_strips_the_ends_and_keeps_the_rest() -> None:
    data = {"a": "  value with spaces inside \r\n", "b": "\t\n", "c": "caf\u00e9-\u00fc"}
    assert header_value(data, "a") == "value with spaces inside"
    assert header_value(data, "b") == ""
    assert header_value(data, "missing") == ""
    assert header_value(data, "c") == "caf\u00e9-\u00fc"  # not a control character


# --- what follows from the reason: Stalled, an Event, a fixed Secret probed at once -------------

POLICY = Policy(default_interval=3600, backoff_base=5, backoff_cap=300, jitter=0.0)


def _after(reason: Reason) -> tuple[decide.Plan, Memory, Observed]:
    raw = {
        "type": "S3Compatible",
        "environment": "Development",
        "s3Compatible": {"endpoint": "http://127.0.0.1:9", "bucket": "reports"},
        "credentials": {"secretRef": {"name": "creds"}},
    }
    observed = Observed(
        generation=1,
        raw_spec=raw,
        annotations={},
        status={},
        secret=SecretView(uid=SECRET_UID, fingerprint="f1"),
        now=NOW,
    )
    memory = Memory()
    assert decide.plan(observed, memory, POLICY).probe
    failed = Outcome(verified=False, reason=reason, message="m", time=NOW, probed=False)
    plan = decide.after_probe(observed, parse_spec(raw), failed, memory, POLICY, random.Random(1))
    return plan, memory, observed


def test_an_invalid_value_is_stalled_and_handled_as_a_missing_key() -> None:
    invalid, memory, observed = _after(Reason.SecretKeyInvalid)
    missing, _, _ = _after(Reason.SecretKeyMissing)
    assert invalid.status is not None and missing.status is not None
    stalled = {c["type"]: c for c in invalid.status["conditions"]}
    assert stalled[ConditionType.Stalled]["status"] == "True"
    assert stalled[ConditionType.Stalled]["reason"] == "SecretKeyInvalid"
    assert stalled[ConditionType.Ready]["status"] == "False"
    assert ConditionType.Reconciling not in stalled
    assert invalid.requeue_after == missing.requeue_after
    events = conditions.transition_events(None, invalid.status)
    assert [(e.type, e.reason) for e in events] == [("Warning", "VerificationFailed")]
    assert events[0].message.startswith("SecretKeyInvalid")
    # The Secret edited: a new fingerprint is probed at once.
    fixed = Observed(
        generation=1,
        raw_spec=observed.raw_spec,
        annotations={},
        status=invalid.status,
        secret=SecretView(uid=SECRET_UID, fingerprint="f2"),
        now=NOW + datetime.timedelta(seconds=1),
    )
    assert decide.plan(fixed, memory, POLICY).probe


@pytest.mark.parametrize("key", HMAC_KEYS)
def test_a_gcs_hmac_key_a_header_cannot_carry_is_refused(key: str) -> None:
    """GCS's HMAC pair signs S3-style requests: its values go into headers too."""
    pair = {"hmacAccessKey": "GOOG1EXAMPLEACCESSKEY", "hmacSecret": "gcs-hmac-secret-example"}
    provider = GoogleCloudStorageProvider()
    with pytest.raises(SecretKeyInvalidError) as refused:
        provider.load_credentials({**pair, key: "first-line\nsecond-line"})
    assert refused.value.key == key and key in refused.value.message
    assert "first-line" not in refused.value.message
    loaded = provider.load_credentials({**pair, key: pair[key] + "\n"})  # --from-file's newline
    assert isinstance(loaded, S3Credentials)
    assert (loaded.access_key_id, loaded.secret_access_key) == tuple(pair.values())
