"""Transport options (`spec.transport`, the Secret's `caBundle`) against real servers.

Every provider that has a real server here is reached over TLS with a
certificate from a CA this module makes, so that nobody trusts it unless
told to: moto's S3 server, Azurite, the OSS server and the GCS stand-in each
sit behind a TLS relay (TLS outside, their own plain HTTP inside), and the
webhook receiver serves TLS with a CA of its own. A CONNECT proxy on loopback
stands in for a corporate proxy: test infrastructure that only tunnels bytes,
and records each tunnel's target.

One table, through `probe.verify.verify` with the providers as the operator
builds them (no CA bundle or proxy of their own): without the CA the probe
fails with `TLSError`; with the CA's PEM in the Secret's `caBundle` it
succeeds; with `insecureSkipTLSVerify` in Development it succeeds and says
that verification was skipped; through the proxy the connection goes through
a tunnel, still checking the target's certificate end to end. Each case checks
the Reason, whether the server got the probe, the proxy's tunnels, and that no
value of the Secret is in any message. How the options are parsed and handed to
each SDK, with no server, is test_transport_options.py.
"""

from __future__ import annotations

import datetime
import json
import select
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from s3cases import as_secret
from webhookserver import VERIFICATION_TOKEN, CertificateAuthority, WebhookReceiver

from azurite import Azurite
from destination_operator.api.spec import (
    DestinationSpec,
    Environment,
    parse_spec,
    spec_problems,
)
from destination_operator.api.status import Reason, StepOutcome
from destination_operator.outcome import Outcome
from destination_operator.probe.verify import verify
from destination_operator.providers.base import PROBE_DIRECTORY
from destination_operator.providers.gcs import GoogleCloudStorageProvider
from destination_operator.providers.registry import Registry
from destination_operator.providers.transport import CA_BUNDLE_KEY, TLS_SKIPPED_NOTE
from gcsserver import GcsServer
from loopback import LoopbackServer, SilentServer
from ossserver import OSSServer, make_users
from s3server import S3Server

pytest_plugins = ["webhook_fixtures", "azure_fixtures", "gcs_fixtures"]

# urllib3 warns of each unverified request: the insecure cases make them on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

NOW = datetime.datetime(2026, 11, 22, 7, 0, tzinfo=datetime.UTC)
CANARY = "canary-SECRET-never-show-me-7b2d9e41"
SECRET_UID = "3f8e1c2a-6b4d-4a97-8e15-c0d2b7f9a364"
CONTAINER = "destinations"  # Azurite's container, the OSS and GCS servers' first bucket


# --- servers: a TLS relay and a CONNECT proxy ---------------------------------------------------


def pipe(first: socket.socket, second: socket.socket, stop: threading.Event) -> None:
    """Copy bytes both ways until either side closes (one thread: TLS sockets are not
    for two threads at once)."""
    sockets = (first, second)
    for sock in sockets:
        sock.settimeout(5)
    while not stop.is_set():
        ready: list[socket.socket] = [
            s for s in sockets if isinstance(s, ssl.SSLSocket) and s.pending()
        ]
        if not ready:
            ready, _, _ = select.select(sockets, [], [], 0.1)
        for source in ready:
            data = source.recv(65536)
            if not data:
                return
            (second if source is first else first).sendall(data)


class TLSRelay(LoopbackServer):
    """TLS outside (a certificate signed by `authority`), plain TCP to `target_port` inside."""

    def __init__(self, authority: CertificateAuthority, target_port: int) -> None:
        self.target_port = target_port
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(authority.cert_file, authority.key_file)
        super().__init__(backlog=128)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def handle(self, conn: socket.socket) -> None:
        with conn:  # also when the client refuses the TLS handshake
            conn.settimeout(5)
            tls = self.track(self.context.wrap_socket(conn, server_side=True))
            upstream = self.track(socket.create_connection(("127.0.0.1", self.target_port), 5))
            with tls, upstream:
                pipe(tls, upstream, self.stop)


class ConnectProxy(LoopbackServer):
    """An HTTP proxy that only tunnels (CONNECT host:port, then bytes both ways); `tunnels`
    lists each tunnel's target. Anything but CONNECT gets 405."""

    def __init__(self) -> None:
        self.tunnels: list[str] = []
        super().__init__(backlog=128)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 8192:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            if method != "CONNECT":
                conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            with self.lock:
                self.tunnels.append(target)
            host, _, port = target.rpartition(":")
            try:
                upstream = self.track(socket.create_connection((host.strip("[]"), int(port)), 5))
            except OSError:
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            conn.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            with upstream:
                pipe(conn, upstream, self.stop)


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    """The CA that signs the relays' certificate (for 127.0.0.1 and localhost)."""
    return CertificateAuthority(tmp_path_factory.mktemp("transport-ca"))


@pytest.fixture(scope="module")
def other_authority(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    """A CA that signed nothing the servers use."""
    return CertificateAuthority(tmp_path_factory.mktemp("other-ca"))


@pytest.fixture(scope="module")
def oss() -> Iterator[OSSServer]:
    """The OSS server over plain HTTP (region cn-hangzhou), secrets starting with the canary."""
    with OSSServer(users=make_users(secret_marker=CANARY)) as server:
        yield server


@pytest.fixture(scope="module")
def relays(authority: CertificateAuthority) -> Iterator[dict[int, TLSRelay]]:
    """TLS relays by the port they relay to, made on first use, closed with the module."""
    made: dict[int, TLSRelay] = {}
    try:
        yield made
    finally:
        for relay in made.values():
            relay.close()


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    """The CONNECT proxy, for one test."""
    running = ConnectProxy()
    try:
        yield running
    finally:
        running.close()


# --- the providers' targets ---------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where one provider's probe goes: the spec's member block, the Secret, the evidence."""

    member: dict[str, Any]
    secret: dict[str, bytes]
    ca_file: Path  # the CA that signed the certificate the probe meets
    address: str  # host:port a tunnel to the target names
    served: Callable[[str], int]  # requests the server got for a probe key
    registry: Registry | None = None  # None: the operator's own providers


class Targets:
    """The targets of a case's provider, their servers started on first use."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request

    def _fixture(self, name: str) -> Any:
        return self._request.getfixturevalue(name)

    def _relay(self, port: int) -> TLSRelay:
        made: dict[int, TLSRelay] = self._fixture("relays")
        if port not in made:
            made[port] = TLSRelay(self._fixture("authority"), port)
        return made[port]

    def get(self, kind: str, *, plain: bool = False) -> Target:
        """`kind`'s target; `plain`: the server's own http:// address, without TLS."""
        make: Callable[[bool], Target] = getattr(self, f"_{kind}")
        return make(plain)

    def _ca(self) -> Path:
        authority: CertificateAuthority = self._fixture("authority")
        return authority.ca_file

    def _s3(self, plain: bool) -> Target:
        s3: S3Server = self._fixture("s3")
        url = s3.endpoint if plain else self._relay(s3.port).url
        return Target(
            member={
                "s3Compatible": {"endpoint": url, "bucket": s3.buckets[0], "forcePathStyle": True}
            },
            secret=as_secret(s3.users["admin"]),
            ca_file=self._ca(),
            address=urlsplit(url).netloc,
            served=lambda key: sum(key in line for line in s3.requests()),
        )

    def _webhook(self, plain: bool) -> Target:
        assert not plain, "the webhook receiver speaks TLS only"
        receiver: WebhookReceiver = self._fixture("webhook_receiver")
        return Target(
            member={"webhook": {"url": receiver.url("/hook")}},
            secret={"verificationToken": VERIFICATION_TOKEN.encode()},
            ca_file=receiver.ca_file,
            address=f"127.0.0.1:{receiver.port}",
            served=lambda key: len(receiver.received(key)),
        )

    def _azure(self, plain: bool) -> Target:
        azurite: Azurite = self._fixture("azurite")
        base = f"http://127.0.0.1:{azurite.port}" if plain else self._relay(azurite.port).url
        return Target(
            member={
                "azureBlobStorage": {
                    "storageAccountName": azurite.account,
                    "containerName": CONTAINER,
                    "endpoint": f"{base}/{azurite.account}",
                }
            },
            secret={"accountKey": azurite.key.encode()},
            ca_file=self._ca(),
            address=urlsplit(base).netloc,
            # The access log names the blob; the probe key's last part is unique.
            served=lambda key: sum(key.rsplit("/", 1)[-1] in line for line in azurite.requests()),
        )

    def _oss(self, plain: bool) -> Target:
        oss: OSSServer = self._fixture("oss")
        url = oss.endpoint if plain else self._relay(oss.port).url
        return Target(
            member={
                "alibabaOSS": {"bucket": CONTAINER, "region": "oss-cn-hangzhou", "endpoint": url}
            },
            secret=oss.users["admin"].secret_data(),
            ca_file=self._ca(),
            address=urlsplit(url).netloc,
            served=lambda key: len(oss.requests_for(key)),
        )

    def _gcs(self, plain: bool) -> Target:
        gcs: GcsServer = self._fixture("gcs")
        port = int(urlsplit(gcs.endpoint).port or 0)
        url = gcs.endpoint if plain else self._relay(port).url
        token_uri = f"{url}/token"
        registry = Registry()  # a provider that accepts this token endpoint and storage API
        registry.register(
            GoogleCloudStorageProvider(api_endpoint=url, token_uris=frozenset({token_uri}))
        )
        document = {**gcs.key_file("admin"), "token_uri": token_uri}
        return Target(
            member={"googleCloudStorage": {"bucket": CONTAINER}},
            secret={"serviceAccountJson": json.dumps(document).encode()},
            ca_file=self._ca(),
            address=urlsplit(url).netloc,
            served=lambda key: sum(key.rsplit("/", 1)[-1] in line for line in gcs.requests()),
            registry=registry,
        )


# --- the table ----------------------------------------------------------------------------------

KINDS = ("s3", "webhook", "azure", "oss", "gcs")
MEMBER_TYPES = {
    "s3": "S3Compatible",
    "webhook": "Webhook",
    "azure": "AzureBlobStorage",
    "oss": "AlibabaOSS",
    "gcs": "GoogleCloudStorage",
}


@dataclass(frozen=True)
class Case:
    """One probe: its transport, and what must come of it."""

    id: str
    kind: str  # which provider: one of KINDS
    reason: Reason
    ca: str = ""  # the Secret's caBundle: "" none, "server" the server's CA, "other", or raw text
    proxy: str = ""  # "" none, "tunnel" the CONNECT proxy, "closed", "silent", or a URL
    insecure: bool = False  # spec.transport.insecureSkipTLSVerify
    environment: str = "Production"
    plain: bool = False  # the target's own http:// address (Development)
    timeout: str = "5s"
    says: tuple[str, ...] = ()  # words the outcome's message must contain
    tunnelled: bool = False  # the proxy opened a tunnel (only ever to the target)

    @property
    def reached(self) -> bool:
        """The server must have got the probe's requests."""
        return self.reason == Reason.ProbeSucceeded


def _per_provider() -> list[Case]:
    cases: list[Case] = []
    for kind in KINDS:
        cases += [
            Case(
                f"{kind}-untrusted-without-ca-bundle", kind, Reason.TLSError, says=("certificate",)
            ),
            Case(f"{kind}-ca-bundle-from-the-secret", kind, Reason.ProbeSucceeded, ca="server"),
            Case(
                f"{kind}-insecure-skip-verify-in-development",
                kind,
                Reason.ProbeSucceeded,
                insecure=True,
                environment="Development",
                says=(TLS_SKIPPED_NOTE,),
            ),
            Case(
                f"{kind}-ca-bundle-through-the-proxy",
                kind,
                Reason.ProbeSucceeded,
                ca="server",
                proxy="tunnel",
                tunnelled=True,
            ),
        ]
    return cases


CASES = [
    *_per_provider(),
    Case(
        "s3-untrusted-through-the-proxy-tls-is-end-to-end",
        "s3",
        Reason.TLSError,
        proxy="tunnel",
        says=("certificate",),
        tunnelled=True,
    ),
    Case(
        "webhook-untrusted-through-the-proxy-tls-is-end-to-end",
        "webhook",
        Reason.TLSError,
        proxy="tunnel",
        says=("certificate",),
        tunnelled=True,
    ),
    Case("s3-ca-bundle-of-another-ca", "s3", Reason.TLSError, ca="other", says=("certificate",)),
    Case(
        "webhook-ca-bundle-of-another-ca",
        "webhook",
        Reason.TLSError,
        ca="other",
        says=("certificate",),
    ),
    Case(
        "s3-ca-bundle-without-a-certificate",
        "s3",
        Reason.SecretKeyMissing,
        ca=f"-----BEGIN PRIVATE KEY-----\n{CANARY}\n-----END PRIVATE KEY-----\n",
        says=(CA_BUNDLE_KEY, "no PEM certificate"),
    ),
    Case(
        "s3-ca-bundle-with-a-broken-certificate",
        "s3",
        Reason.SecretKeyMissing,
        ca="-----BEGIN CERTIFICATE-----\nQ0FOQVJZ\n-----END CERTIFICATE-----\n",
        says=(CA_BUNDLE_KEY, "certificate 1 of 1 is not a valid PEM certificate"),
    ),
    Case(
        "s3-plain-http-target-does-not-use-the-proxy",
        "s3",
        Reason.ProbeSucceeded,
        proxy="tunnel",
        plain=True,
        environment="Development",
    ),
    Case("s3-proxy-port-closed", "s3", Reason.EndpointUnreachable, ca="server", proxy="closed"),
    Case(
        "s3-proxy-never-answers",
        "s3",
        Reason.Timeout,
        ca="server",
        proxy="silent",
        timeout="1s",
    ),
    Case(
        "webhook-proxy-never-answers",
        "webhook",
        Reason.Timeout,
        ca="server",
        proxy="silent",
        timeout="1s",
    ),
    Case(
        "s3-proxy-at-the-metadata-address",
        "s3",
        Reason.EndpointBlocked,
        ca="server",
        proxy="http://169.254.169.254:3128",
        says=("spec.transport.httpsProxy", "cloud metadata"),
    ),
]


def proxy_url(case: Case, request: pytest.FixtureRequest) -> str | None:
    if not case.proxy:
        return None
    if case.proxy == "tunnel":
        running: ConnectProxy = request.getfixturevalue("proxy")
        return running.url
    if case.proxy == "closed":
        return f"http://127.0.0.1:{request.getfixturevalue('closed_port')}"
    if case.proxy == "silent":
        silent: SilentServer = request.getfixturevalue("silent_server")
        return f"http://127.0.0.1:{silent.port}"
    return case.proxy


def ca_bundle(case: Case, target: Target, request: pytest.FixtureRequest) -> bytes | None:
    if not case.ca:
        return None
    if case.ca == "server":
        return target.ca_file.read_bytes()
    if case.ca == "other":
        other: CertificateAuthority = request.getfixturevalue("other_authority")
        return other.ca_file.read_bytes()
    return case.ca.encode()


def make_spec(
    kind: str,
    member: dict[str, Any],
    *,
    environment: str = "Production",
    transport: dict[str, Any] | None = None,
    timeout: str = "5s",
) -> DestinationSpec:
    """A spec as a user would write it."""
    raw: dict[str, Any] = {
        "type": MEMBER_TYPES.get(kind, kind),
        **member,
        "environment": environment,
        "pathPrefix": "probes/",
        "credentials": {"secretRef": {"name": "creds"}},
        "verification": {"timeout": timeout},
    }
    if transport:
        raw["transport"] = transport
    return parse_spec(raw)


def served(target: Target, object_key: str, *, wait: bool) -> bool:
    """The server logged a request for `object_key`; with `wait`, allow it 2 s to write its log
    (Azurite writes a line just after it answers)."""
    deadline = time.monotonic() + (2 if wait else 0)
    while target.served(object_key) == 0:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def messages(outcome: Outcome) -> list[str]:
    return [outcome.message, *(step.message for step in outcome.steps), repr(outcome)]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_transport(case: Case, request: pytest.FixtureRequest) -> None:
    target = Targets(request).get(case.kind, plain=case.plain)
    transport: dict[str, Any] = {}
    proxy = proxy_url(case, request)
    if proxy:
        transport["httpsProxy"] = proxy
    if case.insecure:
        transport["insecureSkipTLSVerify"] = True
    spec = make_spec(
        case.kind,
        target.member,
        environment=case.environment,
        transport=transport,
        timeout=case.timeout,
    )
    data = {**target.secret, "notes": CANARY.encode()}
    bundle = ca_bundle(case, target, request)
    if bundle is not None:
        data[CA_BUNDLE_KEY] = bundle
    object_key = f"probes/{PROBE_DIRECTORY}/{uuid.uuid4()}.txt"

    started = time.monotonic()
    outcome = verify(
        spec,
        data,
        secret_uid=SECRET_UID,
        object_key=object_key,
        allow_private=True,
        now=NOW,
        registry=target.registry,
    )
    elapsed = time.monotonic() - started

    assert outcome.reason == case.reason, outcome
    for words in case.says:
        assert words in outcome.message, outcome.message
    assert outcome.message.startswith(TLS_SKIPPED_NOTE) == (case.insecure and outcome.verified)
    assert (TLS_SKIPPED_NOTE in outcome.message) == outcome.message.startswith(TLS_SKIPPED_NOTE)
    if outcome.verified:
        assert all(step.outcome is not StepOutcome.Failed for step in outcome.steps)
    assert served(target, object_key, wait=case.reached) == case.reached
    assert elapsed < (3 if case.timeout == "1s" else 10), elapsed
    if case.proxy == "tunnel":
        tunnels: list[str] = request.getfixturevalue("proxy").tunnels
        assert bool(tunnels) == case.tunnelled
        assert all(tunnel == target.address for tunnel in tunnels), tunnels
    if case.proxy == "silent":  # the probe did reach the proxy, whose silence used up the time
        assert request.getfixturevalue("silent_server").accepted == 1

    values = [value.decode() for value in data.values()]
    for text in messages(outcome):
        assert not [value for value in values if value in text], text


# --- the checks around the probe ----------------------------------------------------------------


def test_insecure_outside_development_is_refused_before_any_connection(
    s3: S3Server, relays: dict[int, TLSRelay], authority: CertificateAuthority
) -> None:
    """Admission refuses it; a stored object that predates the rule is refused by verify too."""
    if s3.port not in relays:
        relays[s3.port] = TLSRelay(authority, s3.port)
    relay = relays[s3.port]
    member = {"s3Compatible": {"endpoint": relay.url, "bucket": s3.buckets[0]}}
    raw = {
        "type": "S3Compatible",
        **member,
        "credentials": {"secretRef": {"name": "creds"}},
        "transport": {"insecureSkipTLSVerify": True},
    }
    problems = spec_problems(raw)
    assert [p.field for p in problems] == ["spec.transport.insecureSkipTLSVerify"]
    assert "only when spec.environment is Development" in problems[0].message

    development = make_spec(
        "s3", member, environment="Development", transport={"insecureSkipTLSVerify": True}
    )
    stored = development.model_copy(update={"environment": Environment.Production})
    object_key = f"probes/{PROBE_DIRECTORY}/{uuid.uuid4()}.txt"
    outcome = verify(
        stored,
        {**as_secret(s3.users["admin"]), "notes": CANARY.encode()},
        secret_uid=SECRET_UID,
        object_key=object_key,
        allow_private=True,
        now=NOW,
    )
    assert outcome.reason == Reason.InvalidSpec
    assert "insecureSkipTLSVerify" in outcome.message
    assert outcome.last_probe() is None
    assert sum(object_key in line for line in s3.requests()) == 0
    assert CANARY not in outcome.message


def test_a_proxy_at_a_private_address_needs_private_endpoints_allowed(
    proxy: ConnectProxy,
) -> None:
    """The proxy is the author's choice, so the guard checks it even when nothing else is
    (Amazon S3's endpoint is AWS's own): loopback is refused unless allowed, before any
    connection."""
    spec = make_spec(
        "AmazonS3",
        {"amazonS3": {"bucket": "example-bucket", "region": "us-east-1"}},
        transport={"httpsProxy": proxy.url},
    )
    outcome = verify(
        spec,
        {"accessKeyId": b"AKIAEXAMPLEEXAMPLE00", "secretAccessKey": CANARY.encode()},
        secret_uid=SECRET_UID,
        object_key=f"probes/{PROBE_DIRECTORY}/{uuid.uuid4()}.txt",
        allow_private=False,
        now=NOW,
    )
    assert outcome.reason == Reason.EndpointBlocked
    assert outcome.message.startswith("the proxy (spec.transport.httpsProxy): ")
    assert "loopback" in outcome.message
    assert proxy.tunnels == [] and outcome.last_probe() is None
    assert CANARY not in outcome.message
