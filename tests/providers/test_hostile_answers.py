"""A hostile endpoint's answer can neither freeze the operator nor leak a credential.

Every provider whose endpoint the Destination's author chooses (S3Compatible,
AzureBlobStorage and AlibabaOSS through their endpoint, Webhook through its
URL) is pointed at a server on loopback that answers every request with an
error shaped to be slow to scan: a megabyte of body (and 120 kB, which the
probe still reads whole and parses), a 64 kB reason phrase, or (OSS, which
reads only 4 kB of an error body) a 64 kB `x-oss-err` header, filled with
text that a pattern with overlapping repetition scans in quadratic time
(`slowservers.SHAPES`). The answer starts with an echo of the Secret's
values, as an endpoint that reflects its request would send them.

Python's regular expressions hold the GIL, so such a scan stalls every thread
of the operator, not only the probe's. Each probe runs through
`probe.verify.verify` in a worker thread, as in the operator, while a heartbeat
thread of the same process sleeps 10 ms in a loop and records the longest
gap between its wakeups. The same provider against the same server with a
small, ordinary error first gives the baseline gap (after a warm-up probe,
so that importing the SDK is not counted). Each hostile probe must end
within its timeout plus 1 s, stall the heartbeat less than 100 ms more than
the baseline, keep every step message to 4096 characters and the outcome's
message to 240, and show no Secret value, in any form, anywhere in the
outcome. Run with `-s` to see the figures.
"""

from __future__ import annotations

import base64
import datetime
import gc
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus

import pytest
from s3cases import s3_spec
from slowservers import SHAPES, Heartbeat, HostileServer
from test_oss_provider import oss_spec

from destination_operator.api.spec import DestinationSpec, parse_spec
from destination_operator.api.status import Reason
from destination_operator.outcome import Outcome
from destination_operator.probe.verify import verify

NOW = datetime.datetime(2026, 12, 9, 7, 0, tzinfo=datetime.UTC)
SECRET_UID = "5e2c9a71-3b8d-4f60-a1e4-7c0d2b9f8e36"
TIMEOUT = 5.0
TIMEOUT_TEXT = "5s"
SLACK = 1.0  # a probe ends within its timeout plus this
EXTRA_GAP = 0.1  # the most a hostile answer may add to the heartbeat's longest gap
STEP_MESSAGE_LIMIT = 4096
MESSAGE_LIMIT = 240

BODY_SIZE = 1_000_000  # bytes of a hostile error body
READABLE_SIZE = 120_000  # an error body the probe reads whole (under its 128 KiB answer cap)
REASON_SIZE = 64_000  # characters of a hostile reason phrase (http.client reads up to 64 KiB)
HEADER_SIZE = 64_000  # characters of a hostile header's value

CANARY = "canary\\SECRET/never+show=me-6d2a0f93"
"""In every Secret: the backslash makes its repr differ, "/+=" its URL-encoded forms."""


def forms(value: str) -> set[str]:
    """`value` as it could show: itself, URL-encoded, and inside a repr."""
    return {
        value,
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        repr(value)[1:-1],
        repr(value.encode())[2:-1],
    }


# --- what each provider's server answers -------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: the status line, extra headers and the body."""

    status: int
    reason: str
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    def server(self, *, keep_alive: bool) -> HostileServer:
        return HostileServer(
            self.status, self.reason, self.body, headers=self.headers, keep_alive=keep_alive
        )


def s3_error(message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
        f"<Message>{message}</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>"
    ).encode()


def azure_error(message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthorizationFailure</Code>'
        f"<Message>{message}\nRequestId:7f1c2a3e-0001-0042-6b2f-1a9c5b000000\n"
        "Time:2026-12-09T07:00:00.0000000Z</Message></Error>"
    ).encode()


def oss_error(message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
        f"<Message>{message}</Message><RequestId>6581B1F2E3A4C5D6E7F80912</RequestId>"
        "<HostId>probe-bucket.oss-cn-hangzhou.aliyuncs.com</HostId></Error>"
    ).encode()


def text_body(message: str) -> bytes:
    return message.encode()


@dataclass(frozen=True)
class Target:
    """A provider pointed at a local endpoint, and how its service states an error."""

    name: str
    spec: Callable[[str], DestinationSpec]  # from the server's base URL
    secret: dict[str, bytes]
    status: int
    reason: str  # the ordinary reason phrase of `status`
    error: Callable[[str], bytes]  # an error body stating a message
    headers: Mapping[str, str]
    keep_alive: bool

    def echo(self) -> str:
        """The Secret's values, plainly and URL-encoded, as a reflecting endpoint sends them."""
        values = (value.decode() for value in self.secret.values())
        return " ".join(f"{value} {quote(value, safe='')}" for value in values) + " "

    def plain(self) -> Answer:
        """An ordinary error answer of the same status: the baseline."""
        return Answer(self.status, self.reason, self.error("Access Denied"), self.headers)


def azure_spec(endpoint: str) -> DestinationSpec:
    return parse_spec(
        {
            "type": "AzureBlobStorage",
            "environment": "Development",
            "azureBlobStorage": {
                "storageAccountName": "probeaccount",
                "containerName": "probes",
                "endpoint": f"{endpoint}/probeaccount",
            },
            "pathPrefix": "probes/",
            "credentials": {"secretRef": {"name": "creds"}},
            "verification": {"timeout": TIMEOUT_TEXT},
        }
    )


def webhook_spec(endpoint: str) -> DestinationSpec:
    return parse_spec(
        {
            "type": "Webhook",
            "environment": "Development",
            "webhook": {"url": f"{endpoint}/hook"},
            "credentials": {"secretRef": {"name": "hook"}},
            "verification": {"timeout": TIMEOUT_TEXT},
        }
    )


XML = {"Content-Type": "application/xml"}

S3 = Target(
    "s3",
    lambda endpoint: s3_spec(endpoint, "probe-bucket", timeout=TIMEOUT_TEXT),
    {"accessKeyId": b"AKIAHOSTILEANSWER001", "secretAccessKey": CANARY.encode()},
    403,
    "Forbidden",
    s3_error,
    {**XML, "x-amz-request-id": "4442587FB7D0A2F9"},
    keep_alive=True,
)
AZURE = Target(
    "azure",
    azure_spec,
    {"accountKey": base64.b64encode(CANARY.encode().ljust(64, b"~"))},
    403,
    "Server failed to authorize the request.",
    azure_error,
    {
        **XML,
        "x-ms-error-code": "AuthorizationFailure",
        "x-ms-request-id": "7f1c2a3e-0001-0042-6b2f-1a9c5b000000",
    },
    keep_alive=True,
)
OSS = Target(
    "oss",
    lambda endpoint: oss_spec(endpoint, bucket="probe-bucket", timeout=TIMEOUT_TEXT),
    {"accessKeyId": b"LTAIhostileanswer01", "accessKeySecret": CANARY.encode()},
    403,
    "Forbidden",
    oss_error,
    {**XML, "x-oss-request-id": "6581B1F2E3A4C5D6E7F80912"},
    keep_alive=True,
)
WEBHOOK_2XX = Target(
    "webhook-200",
    webhook_spec,
    {"verificationToken": CANARY.encode()},
    200,
    "OK",
    text_body,
    {"Content-Type": "text/plain"},
    keep_alive=False,
)
WEBHOOK_403 = Target(
    "webhook-403",
    webhook_spec,
    {"verificationToken": CANARY.encode()},
    403,
    "Forbidden",
    text_body,
    {"Content-Type": "text/plain"},
    keep_alive=False,
)


# --- the hostile answers -----------------------------------------------------------------------


def filled(prefix: str, shape: str, size: int, wrap: Callable[[str], bytes]) -> bytes:
    """`wrap(prefix + text of the shape)`, exactly `size` bytes long."""
    room = size - len(wrap(prefix))
    return wrap(prefix + SHAPES[shape](room))


def hostile_body(
    target: Target, shape: str, body_size: int = BODY_SIZE, reason_size: int = REASON_SIZE
) -> Answer:
    """A huge error body, in the service's own format, around the shaped text."""
    body = filled(target.echo(), shape, body_size, target.error)
    return Answer(target.status, target.reason, body, target.headers)


def hostile_reason(
    target: Target, shape: str, body_size: int = BODY_SIZE, reason_size: int = REASON_SIZE
) -> Answer:
    """A huge reason phrase on the status line, and no body (where SDKs fall back on it)."""
    reason = filled(target.echo(), shape, reason_size, str.encode).decode()
    return Answer(target.status, reason, b"", target.headers)


def hostile_reason_and_body(
    target: Target, shape: str, body_size: int = BODY_SIZE, reason_size: int = REASON_SIZE
) -> Answer:
    """Both: what a webhook receiver may answer (a 2xx reason phrase goes into the step)."""
    reason = filled(target.echo(), shape, reason_size, str.encode).decode()
    body = filled(target.echo(), shape, body_size, target.error)
    return Answer(target.status, reason, body, target.headers)


def hostile_oss_header(
    target: Target, shape: str, body_size: int = BODY_SIZE, reason_size: int = REASON_SIZE
) -> Answer:
    """No body, and the error in `x-oss-err` (base64 XML), which oss2 reads in its stead."""
    room = HEADER_SIZE * 3 // 4  # the XML whose base64 form fills the header
    xml = filled(target.echo(), shape, min(room, body_size), target.error)
    headers = {**target.headers, "x-oss-err": base64.b64encode(xml).decode()}
    return Answer(target.status, target.reason, b"", headers)


AnswerMaker = Callable[..., Answer]


@dataclass(frozen=True)
class Case:
    """A provider and the kind of hostile answer its server gives; `read` is the reason the
    probe reports when it must have read and understood the error (not cut it short)."""

    target: Target
    kind: str
    answer: AnswerMaker
    body_size: int = BODY_SIZE
    read: Reason | None = None

    @property
    def id(self) -> str:
        return f"{self.target.name}-{self.kind}"


CASES = (
    Case(S3, "body", hostile_body),
    Case(S3, "body-120k", hostile_body, READABLE_SIZE, read=Reason.AccessDenied),
    Case(S3, "reason", hostile_reason),
    Case(AZURE, "body", hostile_body),
    Case(AZURE, "body-120k", hostile_body, READABLE_SIZE, read=Reason.AccessDenied),
    Case(AZURE, "reason", hostile_reason),
    Case(OSS, "body", hostile_body),
    Case(OSS, "reason", hostile_reason),
    Case(OSS, "header", hostile_oss_header),
    Case(WEBHOOK_2XX, "reason+body", hostile_reason_and_body),
    Case(WEBHOOK_403, "reason+body", hostile_reason_and_body),
)


# --- one probe, watched ------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """What a watched probe gave: its outcome, its wall time and the longest heartbeat gap."""

    outcome: Outcome | None  # None: the probe thread still ran when it was given up
    elapsed: float
    gap: float
    requests: int  # requests the server saw


def probe(target: Target, answer: Answer, *, within: float = TIMEOUT + SLACK + 5) -> Run:
    """`verify()` in a worker thread against a server that gives `answer`, under a heartbeat."""
    server = answer.server(keep_alive=target.keep_alive)
    result: list[Outcome] = []

    def run() -> None:
        result.append(
            verify(
                target.spec(f"http://127.0.0.1:{server.port}"),
                target.secret,
                secret_uid=SECRET_UID,
                object_key=f"probes/.destination-operator-probe/{uuid.uuid4()}.txt",
                allow_private=True,  # the server is on loopback
                now=NOW,
            )
        )

    worker = threading.Thread(target=run, name="probe-under-test", daemon=True)
    # A full collection of the test process's heap takes 100 ms or more here: done now, none
    # falls due during the probe unless the probe itself allocates enough to cause one.
    gc.collect()
    try:
        with Heartbeat(0.01) as heartbeat:
            started = time.monotonic()
            worker.start()
            worker.join(within)
            elapsed = time.monotonic() - started
    finally:
        server.close()
    return Run(result[0] if result else None, elapsed, heartbeat.longest, len(server.requests))


def leaks(run: Run, secret: Mapping[str, bytes]) -> list[str]:
    """Where a Secret value shows in the outcome (the places, never the value)."""
    assert run.outcome is not None
    outcome = run.outcome
    places = {"repr(outcome)": repr(outcome), "outcome.message": outcome.message}
    places.update({f"step {s.name.value}": s.message for s in outcome.steps})
    values = {v.decode() for v in secret.values()} | {CANARY}
    found: set[str] = set()
    for value in values:
        for form in forms(value):
            found.update(place for place, text in places.items() if form in text)
    return sorted(found)


@pytest.fixture(scope="module")
def baseline() -> Callable[[Target], float]:
    """The longest heartbeat gap of a probe against an ordinary error, once per target."""
    gaps: dict[str, float] = {}

    def gap(target: Target) -> float:
        if target.name not in gaps:
            probe(target, target.plain())  # warm-up: the SDK's import and first client
            run = probe(target, target.plain())
            assert run.outcome is not None and run.requests, f"{target.name}: no baseline"
            print(f"\n{target.name} baseline: probe {run.elapsed:.3f}s, gap {run.gap * 1000:.1f}ms")
            gaps[target.name] = run.gap
        return gaps[target.name]

    return gap


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_a_hostile_answer_neither_freezes_the_operator_nor_leaks(
    case: Case, shape: str, baseline: Callable[[Target], float]
) -> None:
    """The probe ends in time, stalls no other thread, and reports a short, clean message."""
    target = case.target
    usual = baseline(target)
    run = probe(target, case.answer(target, shape, body_size=case.body_size))
    print(
        f"{case.id} {shape}: probe {run.elapsed:.3f}s, longest gap {run.gap * 1000:.1f}ms "
        f"(baseline {usual * 1000:.1f}ms)"
    )
    assert run.outcome is not None, f"the probe still ran after {run.elapsed:.1f}s"
    assert run.requests >= 1, "the probe never reached the hostile server"
    assert run.elapsed < TIMEOUT + SLACK, f"the probe took {run.elapsed:.1f}s"
    assert run.gap - usual < EXTRA_GAP, (
        f"the heartbeat stalled {run.gap:.3f}s (baseline {usual:.3f}s): the probe held the GIL"
    )
    outcome = run.outcome
    if target.status >= 400:
        assert not outcome.verified, outcome.reason
    if case.read is not None:
        assert outcome.reason == case.read, outcome.message
    assert len(outcome.message) <= MESSAGE_LIMIT, f"a message of {len(outcome.message)} chars"
    for step in outcome.steps:
        assert len(step.message) <= STEP_MESSAGE_LIMIT, (
            f"step {step.name.value}: a message of {len(step.message)} chars"
        )
    assert not leaks(run, target.secret), f"a Secret value shows in {leaks(run, target.secret)}"
