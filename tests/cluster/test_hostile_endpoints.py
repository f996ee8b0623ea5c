"""What the owner of an endpoint can make of the operator by answering.

A Destination's author chooses the endpoint, and the endpoint's owner every
byte of the answer: its status line, its headers, its body. Against the real
API server and the real operator process, servers on loopback answer with
the credentials they were sent, in every encoding a server or a library may
write them back in, with terminal escape sequences, with text too long for
the status, and with text shaped to make a careless regular expression take
quadratic time. None of it may reach a status, an Event or the log as a
credential or a control character; every status patch must still be
accepted; and one namespace's hostile endpoints must not delay another
namespace's verification (docs/multi-tenancy.md).

The servers are `slowservers.HostileServer`: each gives one fixed answer to
every request, built here from the values the Destination's Secret holds,
as a server that echoes what it was sent would write them.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape

import pytest
from dst import (
    GROUP,
    PLURAL,
    VERSION,
    Receiver,
    apply,
    condition,
    destination,
    secret,
    wait_for,
    webhook_destination,
)
from kubernetes import client, watch
from operator_fixtures import OperatorProcess
from urllib3.exceptions import ProtocolError

import canaries
from harness import Cluster
from providers.slowservers import SHAPES, HostileServer

pytestmark = pytest.mark.cluster

MAX_STEP_MESSAGE = 4096
"""The CRD's maxLength of `status.lastProbe.steps[].message`: a longer one fails the patch."""

# Terminal control: C0 but tab and line feed (ESC starts CSI and OSC sequences, BEL ends
# an OSC, backspace overwrites what was shown), and DEL.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")
TERMINAL_ATTACK = "\x1b]0;pwned\x07\x1b[2J\x1b[1;31mALERT\x1b[0m done\x08\x08\x08\x08ok "

# Distinctive credential values, registered as canaries by `dst.secret`. Those that travel
# in a header hold `/`, `+`, `=`, `&` and a space, so that each encoding writes them
# differently.
KEY_ID = "canary-HOSTILE-AKID-5d1e0c93"
SECRET_KEY = "canary-HOSTILE-S3SECRET/8b2f+e61=never-sent"
SESSION_TOKEN = "canary-HOSTILE-SESSION/3c9a+d4e7=&sent-in-a-header"
HOOK_TOKEN = "canary-HOSTILE-HOOK/verif+3e8a7c51=&tok end"
BEARER_TOKEN = "canary-HOSTILE-BEARER/b4+91ce0d2=="
BROKEN_TOKEN = "canary-part-one-xxxxxxxx\ncanary-part-two-yyyyyyyy"

HOSTILE_PROBES = 4
"""Hostile Destinations probed at once in the fairness test: fewer than the 8 probe slots."""
FAIR_DESTINATIONS = 5
FAIR_WITHIN = 1.0
"""Seconds from a Destination's creation to its Verified=True that fairness promises."""


def echoes(*values: str) -> str:
    """Each value in every form the canary scan looks for, as a server echoing it writes it."""
    forms = (form for value in values for form in canaries.forms(value).values())
    return " ".join(dict.fromkeys(forms))


def slow_text(size: int = 40_000) -> str:
    """Text a pattern with overlapping repetition scans in quadratic time: seconds of CPU,
    with the GIL held, for each pass of such a pattern."""
    return f"{SHAPES['dotted'](size)} {SHAPES['jwt'](size)}"


def s3_error(message: str) -> bytes:
    """An S3 error document: AccessDenied, with `message` as its Message."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
        f"<Message>{escape(message)}</Message><RequestId>hostile</RequestId></Error>"
    ).encode()


def echoing_s3_error() -> bytes:
    """Access denied, with the credentials echoed (each encoding of each value first, then the
    headers that carried them) and then 80 kB of pathological text (under the operator's bound
    on an answer, 128 KiB)."""
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={KEY_ID}/20261207/us-east-1/s3/aws4_request, "
        f"SignedHeaders=host;x-amz-date;x-amz-security-token, Signature={'0f' * 32}"
    )
    sent = {"Authorization": authorization, "x-amz-security-token": SESSION_TOKEN}
    return s3_error(
        f"Access Denied for {echoes(SESSION_TOKEN, KEY_ID, SECRET_KEY)}; "
        f"you sent {json.dumps(sent)} {slow_text()}"
    )


XML = {"Content-Type": "application/xml"}


def s3_compatible(name: str, endpoint: str, *, secret: str) -> dict[str, Any]:
    """An S3Compatible Destination against `endpoint`, whose keys are in Secret `secret`."""
    return destination(
        name,
        {
            "type": "S3Compatible",
            "environment": "Development",
            "s3Compatible": {"endpoint": endpoint, "bucket": "bucket", "forcePathStyle": True},
            "pathPrefix": f"{name}/",
            "credentials": {"secretRef": {"name": secret}},
            "verification": {"interval": "1h", "timeout": "5s"},
        },
    )


def s3_credentials(name: str, **extra: str) -> dict[str, Any]:
    return secret(name, {"accessKeyId": KEY_ID, "secretAccessKey": SECRET_KEY, **extra})


@pytest.fixture
def servers() -> Iterator[list[HostileServer]]:
    """Hostile servers a test starts (append to the list); all closed afterwards."""
    started: list[HostileServer] = []
    try:
        yield started
    finally:
        for server in started:
            server.close()


def _strings(document: Any) -> Iterator[str]:
    """Every string in a decoded JSON document, keys included."""
    if isinstance(document, str):
        yield document
    elif isinstance(document, dict):
        for key, value in document.items():
            yield key
            yield from _strings(value)
    elif isinstance(document, list):
        for item in document:
            yield from _strings(item)


def _leaks(text: str) -> list[str]:
    """Canaries in `text`, read as it is and, for a JSON document, with its strings decoded."""
    found = canaries.found_in(text)
    try:
        decoded = "\n".join(_strings(json.loads(text)))
    except ValueError:
        return found
    return found + [leak for leak in canaries.found_in(decoded) if leak not in found]


def scan(cluster: Cluster, namespace: str, operator: OperatorProcess, log_from: int) -> None:
    """Before the namespace is deleted: no form of any canary in its Destinations' statuses,
    its Events or the operator's log since `log_from` (a byte offset); no control character
    in a condition, step or Event message, nor in that log; no step message longer than the
    CRD allows; and no status patch of the namespace refused."""
    statuses = cluster.kubectl("get", "dst", "-n", namespace, "-o", "json").stdout
    events = cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    log = operator.log.read_bytes()[log_from:].decode("utf-8", "replace")
    problems: list[str] = []
    for where, leaked in (
        ("statuses", _leaks(statuses)),
        ("Events", _leaks(events)),
        ("the operator's log", canaries.found_in(log)),
    ):
        problems += [f"credential in {where}: {leak}" for leak in leaked]

    messages: list[tuple[str, str]] = []
    for item in json.loads(statuses)["items"]:
        name = item["metadata"]["name"]
        status = item.get("status") or {}
        for found in status.get("conditions") or []:
            messages.append((f"{name}: {found['type']} condition", found.get("message") or ""))
        for step in (status.get("lastProbe") or {}).get("steps") or []:
            text = step.get("message") or ""
            messages.append((f"{name}: step {step['name']}", text))
            if len(text) > MAX_STEP_MESSAGE:
                problems.append(f"{name}: step message of {len(text)} characters")
    for event in json.loads(events)["items"]:
        messages.append((f"Event {event.get('reason')}", event.get("message") or ""))
    messages.append(("the operator's log", log))
    for where, text in messages:
        control = CONTROL.search(text)
        if control:
            around = text[max(0, control.start() - 60) : control.end() + 20]
            problems.append(f"control character in {where}: {around!a}")
    if f"status patch of {namespace}/" in log:
        problems.append("a status patch was refused")
    assert not problems, "\n".join(problems)


def probed(body: dict[str, Any]) -> dict[str, Any]:
    """The first step of the last probe; the status holds one (the patch was accepted)."""
    steps = (body["status"].get("lastProbe") or {}).get("steps") or []
    assert steps and steps[0].get("message"), f"no step message: {body['status']}"
    return dict(steps[0])


def test_an_s3_endpoint_that_echoes_the_credentials_in_a_huge_pathological_error(
    cluster: Cluster, namespace: str, operator: OperatorProcess, servers: list[HostileServer]
) -> None:
    """403 AccessDenied, whose Message echoes the Authorization and x-amz-security-token
    headers, the session token in every encoding, then 80 kB of text that quadratic patterns
    choke on: AccessDenied, within the probe's timeout, with no form of any credential anywhere."""
    log_from = operator.log.stat().st_size
    server = HostileServer(403, "Forbidden", echoing_s3_error(), headers=XML)
    servers.append(server)
    endpoint = f"http://127.0.0.1:{server.port}"
    apply(
        cluster,
        namespace,
        s3_credentials("echoed", sessionToken=SESSION_TOKEN),
        s3_compatible("echoed", endpoint, secret="echoed"),
    )
    body = wait_for(cluster, namespace, "echoed", "Verified", "False", reason="AccessDenied")
    assert server.requests, "the probe never reached the hostile server"
    probed(body)
    scan(cluster, namespace, operator, log_from)


def test_a_webhooks_2xx_reason_phrase_is_scrubbed_cleaned_and_capped(
    cluster: Cluster, namespace: str, operator: OperatorProcess, servers: list[HostileServer]
) -> None:
    """200, with a reason phrase of 6000 characters that echoes the verification-token and
    Authorization headers, and carries terminal escape sequences: verified, and the step's
    message holds no credential, no control character, and fits the CRD (4096), so the
    status patch is accepted."""
    log_from = operator.log.stat().st_size
    sent = {"verification-token": HOOK_TOKEN, "Authorization": f"Bearer {BEARER_TOKEN}"}
    phrase = (
        f"OK {TERMINAL_ATTACK}{echoes(HOOK_TOKEN, BEARER_TOKEN)} {TERMINAL_ATTACK}"
        f"you sent {json.dumps(sent)} {TERMINAL_ATTACK}"
    )
    phrase = (phrase + " padding" * 1000)[:6000]
    assert len(phrase) > MAX_STEP_MESSAGE
    server = HostileServer(200, phrase)
    servers.append(server)
    apply(
        cluster,
        namespace,
        secret("hook", {"verificationToken": HOOK_TOKEN, "bearerToken": BEARER_TOKEN}),
        webhook_destination("phrase", f"http://127.0.0.1:{server.port}/hook", secret="hook"),
    )
    body = wait_for(cluster, namespace, "phrase", "Verified", "True", reason="ProbeSucceeded")
    step = probed(body)
    assert "200" in step["message"]
    scan(cluster, namespace, operator, log_from)


def test_a_webhooks_403_that_echoes_the_tokens_json_escaped_and_url_encoded(
    cluster: Cluster, namespace: str, operator: OperatorProcess, servers: list[HostileServer]
) -> None:
    """403, whose reason phrase and JSON body give the tokens back escaped as JSON (`\\/`,
    and `\\u0026` as Go writes `&`) and URL-encoded in either case: AccessDenied, with no
    form of either token anywhere."""
    log_from = operator.log.stat().st_size
    sent = {"verification-token": HOOK_TOKEN, "Authorization": f"Bearer {BEARER_TOKEN}"}
    phrase = f"Forbidden: not these tokens: {echoes(HOOK_TOKEN, BEARER_TOKEN)} {json.dumps(sent)}"
    document = {"error": "forbidden", "forms": echoes(HOOK_TOKEN, BEARER_TOKEN), "youSent": sent}
    go_json = json.dumps(document).replace("/", "\\/").replace("&", "\\u0026").encode()
    server = HostileServer(403, phrase, go_json, headers={"Content-Type": "application/json"})
    servers.append(server)
    apply(
        cluster,
        namespace,
        secret("hook", {"verificationToken": HOOK_TOKEN, "bearerToken": BEARER_TOKEN}),
        webhook_destination("refused", f"http://127.0.0.1:{server.port}/hook", secret="hook"),
    )
    body = wait_for(cluster, namespace, "refused", "Verified", "False", reason="AccessDenied")
    assert "403" in probed(body)["message"]
    scan(cluster, namespace, operator, log_from)


@pytest.mark.parametrize("kind", ["S3Compatible", "Webhook"])
def test_a_secret_value_with_an_inner_line_break_is_refused_by_its_key_name(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    servers: list[HostileServer],
    kind: str,
) -> None:
    """A token with a line break inside would end its header early or fold a line into the
    request, and http.client's refusal quotes it whole: the operator refuses it before any
    connection, with reason SecretKeyInvalid and a message that names the key, and neither
    half of the value appears anywhere."""
    log_from = operator.log.stat().st_size
    server = HostileServer(403, "Forbidden", s3_error("denied"), headers=XML)
    servers.append(server)
    url = f"http://127.0.0.1:{server.port}"
    if kind == "S3Compatible":
        key = "sessionToken"
        objects = [
            s3_credentials("broken", sessionToken=BROKEN_TOKEN),
            s3_compatible("broken", url, secret="broken"),
        ]
    else:
        key = "verificationToken"
        objects = [
            secret("broken", {"verificationToken": BROKEN_TOKEN}),
            webhook_destination("broken", f"{url}/hook", secret="broken"),
        ]
    apply(cluster, namespace, *objects)
    body = wait_for(cluster, namespace, "broken", "Verified", "False", reason="SecretKeyInvalid")
    assert key in condition(body, "Verified")["message"]
    assert server.requests == [], "a request went out with the broken value"
    scan(cluster, namespace, operator, log_from)


class _VerifiedTimes:
    """Watches the Destinations of a namespace from `resource_version` on, and records when
    each is first seen Verified=True for its generation (time.monotonic())."""

    def __init__(self, api: client.CustomObjectsApi, namespace: str, resource_version: str):
        self.seen: dict[str, float] = {}
        self._watch = watch.Watch()
        self._thread = threading.Thread(
            target=self._run, args=(api, namespace, resource_version), daemon=True
        )
        self._thread.start()

    def _run(self, api: client.CustomObjectsApi, namespace: str, resource_version: str) -> None:
        with contextlib.suppress(ProtocolError):  # the stream cut when the test is done
            self._record(api, namespace, resource_version)

    def _record(self, api: client.CustomObjectsApi, namespace: str, resource_version: str) -> None:
        for event in self._watch.stream(
            api.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            resource_version=resource_version,
            timeout_seconds=60,
        ):
            body = event["object"]
            verified = condition(body, "Verified")
            name = body["metadata"]["name"]
            if (
                verified.get("status") == "True"
                and verified.get("observedGeneration") == body["metadata"]["generation"]
            ):
                self.seen.setdefault(name, time.monotonic())

    def stop(self) -> None:
        self._watch.stop()
        self._thread.join(5)


def test_hostile_endpoints_of_one_namespace_do_not_delay_another_namespaces_verification(
    cluster: Cluster, namespace: str, operator: OperatorProcess, servers: list[HostileServer]
) -> None:
    """While four Destinations of one namespace are probed against endpoints whose errors
    are 80 kB of text that quadratic patterns take seconds over (with the GIL held, that
    would stall every probe and the event loop), each of five new Destinations of another
    namespace is verified within a second of its creation."""
    hostile = HostileServer(403, "Forbidden", echoing_s3_error(), headers=XML)
    servers.append(hostile)
    endpoint = f"http://127.0.0.1:{hostile.port}"
    apply(
        cluster,
        namespace,
        s3_credentials("hostile", sessionToken=SESSION_TOKEN),
        *(
            s3_compatible(f"hostile-{number}", endpoint, secret="hostile")
            for number in range(HOSTILE_PROBES)
        ),
    )
    deadline = time.monotonic() + 60
    while len(hostile.requests) < HOSTILE_PROBES and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(hostile.requests) >= HOSTILE_PROBES, "the hostile Destinations were not probed"

    other = f"{namespace}-b"[:63]
    cluster.kubectl("create", "namespace", other)
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    api = client.CustomObjectsApi(cluster.api_client())
    times: _VerifiedTimes | None = None
    try:
        apply(cluster, other, secret("hook", {"verificationToken": "fair-TOKEN-0b7d9e21c4"}))
        listed = api.list_namespaced_custom_object(GROUP, VERSION, other, PLURAL)
        times = _VerifiedTimes(api, other, listed["metadata"]["resourceVersion"])
        url = f"http://127.0.0.1:{receiver.server_port}/hook"
        created: dict[str, float] = {}
        hostile_before = len(hostile.requests)
        for number in range(FAIR_DESTINATIONS):
            name = f"fair-{number}"
            body = webhook_destination(
                name, url, secret="hook", verification={"interval": "1h", "timeout": "5s"}
            )
            created[name] = time.monotonic()
            api.create_namespaced_custom_object(GROUP, VERSION, other, PLURAL, body)
            time.sleep(1.0)  # spread over the hostile probes' backoff (1 s to 4 s here)
        deadline = time.monotonic() + 30
        while len(times.seen) < FAIR_DESTINATIONS and time.monotonic() < deadline:
            time.sleep(0.05)
        hostile_during = len(hostile.requests) - hostile_before
    finally:
        receiver.shutdown()
        receiver.server_close()
        cluster.kubectl("delete", "namespace", other, "--wait=false")
        if times is not None:  # the deletion's events end the watch's wait for the next one
            times.stop()

    waited = {name: times.seen.get(name, float("inf")) - at for name, at in created.items()}
    print(
        f"\nfairness: {HOSTILE_PROBES} hostile Destinations probed, {hostile_during} hostile"
        " answers while the others were created; creation to Verified=True: "
        + ", ".join(f"{name} {seconds:.3f}s" for name, seconds in waited.items())
    )
    slow = {name: round(seconds, 3) for name, seconds in waited.items() if seconds > FAIR_WITHIN}
    assert slow == {}, f"verified later than {FAIR_WITHIN}s after creation: {slow}"
    assert hostile_during >= HOSTILE_PROBES, "the hostile probes had stopped: nothing was proven"
