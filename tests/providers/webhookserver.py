"""A webhook receiver on loopback, served over HTTPS with a certificate from a CA the test makes.

No emulator exists for "a customer's webhook endpoint", so this is one, and it
checks what a careful receiver checks, in this order:

1. the method is POST (405 otherwise);
2. the path is a route it serves: `/moved` redirects (308, with a signed query
   string in `Location`), `/gone` answers 410, `/broken` 503, an unknown path
   404 (a moved or missing receiver answers before looking at credentials);
3. the `verification-token` header holds `VERIFICATION_TOKEN` (401 otherwise);
4. an `Authorization: Bearer` token, when sent (and always under `/gated/`),
   is a known one, or a JWT signed with `JWT_KEY` (HS256) whose `exp` has not
   passed (401 with `WWW-Authenticate: Bearer error="invalid_token"`), with the
   `events:write` scope (403 with `error="insufficient_scope"`), as RFC 6750
   describes;
5. the body is JSON (415 for another content type, 400 for a body without a
   string `challenge`).

Then `/hook` and `/gated/hook` answer 200 with the challenge echoed, `/quiet`
answers 204 (accepted, no echo), and `/slow` sends its 200 answer one byte at
a time. Every request is recorded (`received`), with its headers and body.

The tokens are canary values: a test that finds one in a message has found a
leak.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import http.server
import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from certs import issue

VERIFICATION_TOKEN = "canary-verification-token-4f1d8b2e7c"
"""The token the receiver expects in the `verification-token` header."""

BEARER_TOKENS = {
    "canary-bearer-write-0b7e9a4c55d1": frozenset({"events:write"}),
    "canary-bearer-readonly-6c2f1e8d93": frozenset({"events:read"}),
}
"""Bearer tokens the receiver knows, with their scopes; only `events:write` may post events."""

BEARER_WRITE, BEARER_READONLY = BEARER_TOKENS
JWT_KEY = b"canary-jwt-signing-key-5a0c7e19d2"
"""The key the receiver checks JWT bearer tokens' HS256 signatures with (`make_jwt`)."""
LOCATION_SECRET = "canary-location-signature-8d3a"
"""The signature in the query string of `/moved`'s redirect."""

TRICKLE_DELAY = 0.4
"""Seconds between the bytes of `/slow`'s answer."""


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def make_jwt(exp: datetime.datetime, scope: str = "events:write", key: bytes = JWT_KEY) -> str:
    """A JWT bearer token the receiver accepts until `exp` (signed HS256 with `key`)."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": "delivery-pipeline", "scope": scope, "exp": int(exp.timestamp())}
    payload = _b64url(json.dumps(claims).encode())
    signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


def _jwt_scopes(token: str) -> frozenset[str] | None:
    """The scopes of a JWT signed with `JWT_KEY` that has not expired; None otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    signed = hmac.new(JWT_KEY, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(_b64url(signed), parts[2]):
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if not isinstance(exp, int) or exp <= datetime.datetime.now(datetime.UTC).timestamp():
        return None
    return frozenset(str(claims.get("scope", "")).split())


@dataclass(frozen=True)
class Received:
    """One request the receiver read, and the status it answered."""

    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    status: int

    def event(self) -> dict[str, Any]:
        """The body as JSON ({} if it is not JSON)."""
        try:
            parsed = json.loads(self.body)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}


@dataclass
class CertificateAuthority:
    """A CA made for one test session, and a server certificate it signed for 127.0.0.1."""

    folder: Path
    ca_file: Path = field(init=False)
    cert_file: Path = field(init=False)
    key_file: Path = field(init=False)

    def __post_init__(self) -> None:
        ca = issue("webhook test CA", ca=True)
        server = issue("localhost", hosts=["localhost", "127.0.0.1"], issuer=ca)
        self.cert_file, self.key_file = server.write(self.folder)
        self.ca_file = self.folder / "ca.crt"
        self.ca_file.write_text(ca.pem)


class _Refusal(Exception):
    """The receiver refuses the request with `status` (and extra headers)."""

    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers or {}


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _TLSServer
    timeout = 5  # a client that stops sending does not hold a thread for long

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read `received`."""

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            status, answer, extra = self._answer(headers, body)
        except _Refusal as refusal:
            status, answer, extra = refusal.status, b"", refusal.headers
        self.server.record(Received(self.command, self.path, headers, body, status))
        if self.path == "/slow" and status == 200:
            self._trickle(status, answer)
            return
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer)))
        if answer:
            self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(answer)

    def _answer(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes, dict[str, str]]:
        if self.command != "POST":
            raise _Refusal(405, {"Allow": "POST"})
        path = self.path
        if path == "/moved":
            port = self.server.server_address[1]
            location = f"https://127.0.0.1:{port}/new-home?sig={LOCATION_SECRET}"
            raise _Refusal(308, {"Location": location})
        if path == "/gone":
            raise _Refusal(410)
        if path == "/broken":
            raise _Refusal(503, {"Retry-After": "60"})
        if path not in ("/hook", "/gated/hook", "/quiet", "/slow"):
            raise _Refusal(404)
        if headers.get("verification-token") != VERIFICATION_TOKEN:
            raise _Refusal(401, {"WWW-Authenticate": 'Token realm="webhook"'})
        self._check_bearer(headers.get("authorization"), required=path.startswith("/gated/"))
        if headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise _Refusal(415)
        try:
            challenge = json.loads(body).get("challenge")
        except (ValueError, AttributeError):
            challenge = None
        if not isinstance(challenge, str):
            raise _Refusal(400)
        if path == "/quiet":
            return 204, b"", {}
        return 200, json.dumps({"challenge": challenge}).encode(), {}

    def _check_bearer(self, authorization: str | None, *, required: bool) -> None:
        if authorization is None:
            if required:
                raise _Refusal(401, {"WWW-Authenticate": 'Bearer realm="webhook"'})
            return
        scheme, _, token = authorization.partition(" ")
        scopes = None
        if scheme.lower() == "bearer":
            token = token.strip()
            scopes = BEARER_TOKENS.get(token) or _jwt_scopes(token)
        if scopes is None:
            raise _Refusal(401, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if "events:write" not in scopes:
            raise _Refusal(
                403, {"WWW-Authenticate": 'Bearer error="insufficient_scope" scope="events:write"'}
            )

    def _trickle(self, status: int, answer: bytes) -> None:
        """The whole answer, status line included, one byte every `TRICKLE_DELAY` seconds."""
        reason = self.responses[status][0]
        raw = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(answer)}\r\n\r\n"
        ).encode() + answer
        self.close_connection = True
        for byte in raw:
            if self.server.stopping.wait(TRICKLE_DELAY):
                return
            try:
                self.wfile.write(bytes([byte]))
            except OSError:  # the client shut its end: what the tests expect
                return


class _TLSServer(http.server.ThreadingHTTPServer):
    """Accepts in one thread; the TLS handshake and the request run in a thread per connection."""

    daemon_threads = False
    block_on_close = True  # server_close() joins every connection's thread

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.stopping = threading.Event()
        self.received: list[Received] = []
        self._lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def record(self, request: Received) -> None:
        with self._lock:
            self.received.append(request)

    def finish_request(self, request: Any, client_address: Any) -> None:
        sock: socket.socket = request
        sock.settimeout(5)
        try:
            tls = self.context.wrap_socket(sock, server_side=True)
        except (OSError, ssl.SSLError):  # the client refused the certificate, or went away
            return
        with tls:
            super().finish_request(tls, client_address)


class WebhookReceiver:
    """The receiver, serving on 127.0.0.1 in threads of its own until `close()`."""

    def __init__(self, folder: Path) -> None:
        self.authority = CertificateAuthority(folder)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.authority.cert_file, self.authority.key_file)
        self._server = _TLSServer(context)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def ca_file(self) -> Path:
        """The CA that signed the receiver's certificate (trusted by nobody by default)."""
        return self.authority.ca_file

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}{path}"

    def received(self, probe_key: str | None = None) -> list[Received]:
        """The requests read so far; with `probe_key`, those of that probe only."""
        with self._server._lock:
            every = list(self._server.received)
        if probe_key is None:
            return every
        return [r for r in every if r.event().get("probeKey") == probe_key]

    def close(self) -> None:
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
