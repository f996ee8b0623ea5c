#!/usr/bin/env python3
"""A Google Cloud Storage stand-in on loopback that checks credentials as Google does.

fake-gcs-server (built by hack/build-fake-gcs.sh) speaks GCS's JSON API but
checks no credentials. This server stands in front of it and adds the two
checks Google makes for a service account:

- an OAuth2 token endpoint (`POST /token`, RFC 7523 JWT bearer grant), which
  verifies the assertion's RS256 signature with the public half of the
  account's key, its issuer, audience, lifetime and scope, and answers as
  Google's does: a wrong key gets HTTP 400
  `{"error": "invalid_grant", "error_description": "Invalid JWT Signature."}`;
  otherwise it issues an opaque access token;
- with `--introspect URL`, a token it did not issue is checked at that RFC 7662
  endpoint (tests/identity/googlests.py: workload identity federation), whose answer
  names the identity and its permissions;
- a reverse proxy for every other path: no token or an unknown one gets GCS's
  401, a token whose account lacks the IAM permission the call needs gets
  GCS's 403 (`... does not have storage.objects.delete access ...`); the rest
  goes to the emulator, whose answers (404 for a missing bucket) come back
  unchanged.

    python hack/gcsserver.py --port 9100 --state .servers/gcs

runs in the foreground until SIGINT or SIGTERM and writes, in the state folder:

- `credentials.json`: the endpoint, the token endpoint, the bucket names, and
  one service-account key file per account: `admin` (every permission),
  `writer` (storage.objects.create only: write-only credentials), `noaccess`
  (authenticates, but has no permission on any bucket). Written last,
  atomically: its presence means the server is ready.
- `requests.log`: one line per request: time, method, path, the account (or
  `-`), the status. Never a token, an assertion or a key.

The tests import `GcsServer` to run it as a child process on a free port,
attached to the test process so that it never outlives it.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from controlplane import die_with_parent, free_port, stop_child
from fakegcs import fake_gcs_binary, start_emulator
from introspection import introspected

DEFAULT_BUCKETS = ("destinations", "destinations-other")
CREDENTIALS_FILE = "credentials.json"
REQUESTS_LOG = "requests.log"
PROJECT = "destination-operator-test"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
AUDIENCE = "https://oauth2.googleapis.com/token"  # what Google expects in `aud`, wherever it runs
TOKEN_LIFETIME = 3600
MAX_ASSERTION_LIFETIME = 3600  # Google: "a short-lived token (60 minutes)"
CLOCK_SKEW = 300

# Scopes that allow object writes and deletes (GCS's OAuth scopes).
WRITE_SCOPES = frozenset(
    {
        "https://www.googleapis.com/auth/devstorage.read_write",
        "https://www.googleapis.com/auth/devstorage.full_control",
        "https://www.googleapis.com/auth/cloud-platform",
    }
)

# The IAM permissions each account holds on every bucket. `writer` is what a
# delivery pipeline with write-only credentials has (roles/storage.objectCreator).
PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset({"*"}),
    "writer": frozenset({"storage.objects.create"}),
    "noaccess": frozenset(),
}

_OBJECT = re.compile(r"^/(?:download/)?storage/v1/b/([^/]+)/o/(.+)$")
_OBJECTS = re.compile(r"^/(?:upload/)?storage/v1/b/([^/]+)/o$")
_BUCKET = re.compile(r"^/storage/v1/b/([^/]+)$")


def permission_for(method: str, path: str) -> tuple[str, str]:
    """(IAM permission, resource kind) a JSON API call needs, as GCS checks it."""
    if _OBJECTS.match(path):
        if method in ("POST", "PUT"):
            return "storage.objects.create", "object"
        return "storage.objects.list", "bucket"
    if _OBJECT.match(path):
        by_method = {"DELETE": "storage.objects.delete", "GET": "storage.objects.get"}
        return by_method.get(method, "storage.objects.update"), "object"
    if _BUCKET.match(path) and method == "GET":
        return "storage.buckets.get", "bucket"
    return "storage.buckets.update", "bucket"  # anything else: administrators only


def gcs_error(code: int, message: str, reason: str, **extra: str) -> dict[str, Any]:
    """GCS's JSON error body."""
    item = {"message": message, "domain": "global", "reason": reason, **extra}
    return {"error": {"code": code, "message": message, "errors": [item]}}


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


# --- accounts and their keys --------------------------------------------------------------------


@dataclass
class Account:
    """A service account: its name, e-mail, and key pairs by key id."""

    name: str
    email: str
    keys: dict[str, rsa.RSAPublicKey]


def new_key_file(email: str, token_uri: str) -> tuple[dict[str, str], str, rsa.RSAPublicKey]:
    """A service-account key file as the Cloud console downloads it, its key id and public key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_id = secrets.token_hex(20)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    document = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": key_id,
        "private_key": pem,
        "client_email": email,
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "universe_domain": "googleapis.com",
    }
    return document, key_id, key.public_key()


@dataclass
class Token:
    account: Account
    scopes: frozenset[str]
    expires: float


class Authority:
    """The accounts, their keys, and the access tokens issued; thread-safe."""

    def __init__(self, token_uri: str) -> None:
        self.token_uri = token_uri
        self.accounts: dict[str, Account] = {}
        self._tokens: dict[str, Token] = {}
        self._lock = threading.Lock()

    def add_account(self, name: str) -> dict[str, str]:
        """Create account `name` with one key; returns its key file."""
        email = f"{name}@{PROJECT}.iam.gserviceaccount.com"
        document, key_id, public = new_key_file(email, self.token_uri)
        self.accounts[email] = Account(name, email, {key_id: public})
        return document

    def grant(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any], str]:
        """Answer a token request: (status, JSON body, account name or `-`)."""
        grant_type = (form.get("grant_type") or [""])[0]
        if grant_type != JWT_BEARER:
            message = f"Invalid grant_type: {grant_type}"
            return 400, _oauth_error("unsupported_grant_type", message), "-"
        assertion = (form.get("assertion") or [""])[0]
        try:
            head_b64, body_b64, signature_b64 = assertion.split(".")
            header = json.loads(_b64decode(head_b64))
            claims = json.loads(_b64decode(body_b64))
            signature = _b64decode(signature_b64)
        except ValueError:
            return 400, _oauth_error("invalid_grant", "Invalid JWT: malformed assertion."), "-"
        if header.get("alg") != "RS256":
            return 400, _oauth_error("invalid_grant", "Invalid JWT Signature."), "-"
        account = self.accounts.get(str(claims.get("iss", "")))
        if account is None:
            return 400, _oauth_error("invalid_grant", "Invalid grant: account not found"), "-"
        keys = account.keys
        kid = header.get("kid")
        candidates = [keys[kid]] if kid in keys else ([] if kid else list(keys.values()))
        signed = f"{head_b64}.{body_b64}".encode()
        if not any(_verifies(key, signature, signed) for key in candidates):
            return 400, _oauth_error("invalid_grant", "Invalid JWT Signature."), account.name
        if claims.get("aud") != AUDIENCE:
            message = f"Invalid JWT: Failed audience check. The expected value was {AUDIENCE}"
            return 400, _oauth_error("invalid_grant", message), account.name
        now = time.time()
        try:
            iat, exp = float(claims["iat"]), float(claims["exp"])
        except (KeyError, TypeError, ValueError):
            iat, exp = 0.0, 0.0
        in_time = iat - CLOCK_SKEW <= now < exp + CLOCK_SKEW
        if not in_time or not 0 < exp - iat <= MAX_ASSERTION_LIFETIME:
            message = (
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
                "timeframe. Check your iat and exp values in the JWT claim."
            )
            return 400, _oauth_error("invalid_grant", message), account.name
        scopes = frozenset(str(claims.get("scope", "")).split())
        if not scopes:
            message = "Invalid OAuth scope or ID token audience provided."
            return 400, _oauth_error("invalid_scope", message), account.name
        token = "ya29." + secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[token] = Token(account, scopes, now + TOKEN_LIFETIME)
        answer = {"access_token": token, "expires_in": TOKEN_LIFETIME - 1, "token_type": "Bearer"}
        return 200, answer, account.name

    def token(self, authorization: str) -> Token | None:
        """The live token an `Authorization: Bearer` header carries, or None."""
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value:
            return None
        with self._lock:
            found = self._tokens.get(value.strip())
        if found is None or found.expires <= time.time():
            return None
        return found


def _verifies(key: rsa.RSAPublicKey, signature: bytes, signed: bytes) -> bool:
    try:
        key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def _oauth_error(error: str, description: str) -> dict[str, Any]:
    return {"error": error, "error_description": description}


# --- the HTTP front: token endpoint and checking proxy ------------------------------------------

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "authorization",
        "host",
    }
)


class Front(ThreadingHTTPServer):
    """The listening server: knows the authority, the emulator's port and the log."""

    daemon_threads = True

    authority: Authority
    upstream: int  # the emulator's port
    introspect = ""  # an RFC 7662 endpoint for tokens the authority did not issue

    def __init__(self, address: tuple[str, int], log: Path) -> None:
        super().__init__(address, Handler)
        self._log = log.open("a", encoding="utf-8", buffering=1)
        self._log_lock = threading.Lock()

    def record(self, method: str, path: str, account: str, status: int) -> None:
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {method} {path} {account} {status}"
        with self._log_lock:
            self._log.write(line + "\n")

    def server_close(self) -> None:
        super().server_close()
        with self._log_lock:
            self._log.close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Front

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log says what matters."""

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self, status: int, body: bytes, headers: Iterable[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, document: dict[str, Any], *extra: tuple[str, str]) -> None:
        body = json.dumps(document).encode()
        self._answer(status, body, [("Content-Type", "application/json; charset=UTF-8"), *extra])

    def _handle(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        body = self._body()
        if path == "/token":
            self._token(body)
            return
        authorization = self.headers.get("Authorization", "")
        token = self.server.authority.token(authorization)
        permission, kind = permission_for(self.command, path)
        federated = introspected(self.server.introspect, authorization) if token is None else None
        if federated is not None:
            who, granted = federated
            if "*" not in granted and permission not in granted:
                message = (
                    f"{who} does not have {permission} access to the Google Cloud Storage "
                    f"{kind}. Permission '{permission}' denied on resource (or it may not exist)."
                )
                self._json(403, gcs_error(403, message, "forbidden"))
                self.server.record(self.command, path, who, 403)
                return
            self.server.record(self.command, path, who, self._forward(body))
            return
        if token is None:
            anonymous = not self.headers.get("Authorization")
            message = (
                f"Anonymous caller does not have {permission} access to the Google Cloud "
                f"Storage {kind}. Permission '{permission}' denied on resource "
                "(or it may not exist)."
                if anonymous
                else "Invalid Credentials"
            )
            reason = "required" if anonymous else "authError"
            error = gcs_error(401, message, reason, locationType="header", location="Authorization")
            self._json(
                401, error, ("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"')
            )
            self.server.record(self.command, path, "-", 401)
            return
        account = token.account
        if not token.scopes & WRITE_SCOPES and permission != "storage.objects.get":
            self._json(403, gcs_error(403, "Insufficient Permission", "insufficientPermissions"))
            self.server.record(self.command, path, account.name, 403)
            return
        granted = PERMISSIONS.get(account.name, frozenset())
        if "*" not in granted and permission not in granted:
            message = (
                f"{account.email} does not have {permission} access to the Google Cloud Storage "
                f"{kind}. Permission '{permission}' denied on resource (or it may not exist)."
            )
            self._json(403, gcs_error(403, message, "forbidden"))
            self.server.record(self.command, path, account.name, 403)
            return
        status = self._forward(body)
        self.server.record(self.command, path, account.name, status)

    def _token(self, body: bytes) -> None:
        if self.command != "POST":
            self._json(405, _oauth_error("invalid_request", "POST only"))
            return
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        status, document, account = self.server.authority.grant(form)
        self._json(status, document, ("Cache-Control", "no-store"))
        self.server.record("POST", "/token", account, status)

    def _forward(self, body: bytes) -> int:
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            payload = answer.read()
            kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in _HOP_BY_HOP]
            self._answer(answer.status, payload, kept)
            return answer.status
        finally:
            upstream.close()


# --- running it ---------------------------------------------------------------------------------


def serve(
    host: str,
    port: int,
    state: Path,
    buckets: Iterable[str],
    binary: Path,
    *,
    exit_with_parent: bool,
    introspect: str = "",
) -> None:
    """Run the emulator and the checking front in the foreground until SIGINT or SIGTERM."""
    state.mkdir(parents=True, exist_ok=True)
    credentials_file = state / CREDENTIALS_FILE
    credentials_file.unlink(missing_ok=True)
    buckets = list(buckets)
    front = Front((host, port), state / REQUESTS_LOG)
    front.introspect = introspect
    endpoint = f"http://{host}:{front.server_port}"
    authority = front.authority = Authority(f"{endpoint}/token")
    accounts = {name: authority.add_account(name) for name in PERMISSIONS}
    emulator, front.upstream = start_emulator(binary, state, buckets, endpoint)
    try:
        thread = threading.Thread(target=front.serve_forever, name="gcsserver", daemon=True)
        thread.start()

        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        document = {
            "endpoint": endpoint,
            "tokenUri": authority.token_uri,
            "project": PROJECT,
            "buckets": buckets,
            "accounts": accounts,
        }
        tmp = credentials_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(document, indent=2) + "\n")
        os.chmod(tmp, 0o600)
        tmp.replace(credentials_file)
        print(f"gcsserver: serving {endpoint} (state in {state})", flush=True)

        parent = os.getppid()
        while not stop.wait(0.5):
            if exit_with_parent and os.getppid() != parent:
                break
        front.shutdown()
        thread.join(timeout=5)
        front.server_close()
    finally:
        emulator.terminate()
        try:
            emulator.wait(timeout=10)
        except subprocess.TimeoutExpired:
            emulator.kill()
            emulator.wait(timeout=10)


# --- for the tests ------------------------------------------------------------------------------


class GcsServer:
    """Run hack/gcsserver.py as a child process on a free loopback port.

    with GcsServer(tmp_path) as server:
        server.endpoint, server.token_uri, server.buckets, server.key_file("writer")
    """

    def __init__(
        self, state: Path, *, buckets: Iterable[str] = DEFAULT_BUCKETS, introspect: str = ""
    ) -> None:
        self.state = Path(state)
        self.introspect = introspect
        self.buckets = list(buckets)
        self.endpoint = ""
        self.token_uri = ""
        self.accounts: dict[str, dict[str, str]] = {}
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> GcsServer:
        """Build the emulator if needed, start the server, and wait until it is ready."""
        binary = fake_gcs_binary()
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / CREDENTIALS_FILE).unlink(missing_ok=True)
        args = [sys.executable, str(Path(__file__).resolve()), "--port", str(free_port())]
        args += ["--state", str(self.state), "--binary", str(binary), "--exit-with-parent"]
        for bucket in self.buckets:
            args += ["--bucket", bucket]
        if self.introspect:
            args += ["--introspect", self.introspect]
        with (self.state / "server.log").open("wb") as log:
            self._proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + timeout
        credentials = self.state / CREDENTIALS_FILE
        while not credentials.exists():
            if self._proc.poll() is not None:
                tail = (self.state / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"gcsserver exited with {self._proc.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"gcsserver was not ready within {timeout}s")
            time.sleep(0.05)
        document = json.loads(credentials.read_text())
        self.endpoint = document["endpoint"]
        self.token_uri = document["tokenUri"]
        self.accounts = document["accounts"]
        return self

    def key_file(self, account: str) -> dict[str, str]:
        """A copy of `account`'s service-account key file."""
        return dict(self.accounts[account])

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and reap it; it stops the emulator."""
        proc, self._proc = self._proc, None
        stop_child(proc, timeout=15)

    def requests(self) -> list[str]:
        """The lines of the request log so far."""
        path = self.state / REQUESTS_LOG
        return path.read_text().splitlines() if path.exists() else []

    def __enter__(self) -> GcsServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(state: Path, *, buckets: Iterable[str] = DEFAULT_BUCKETS) -> Iterator[GcsServer]:
    """Context manager form of `GcsServer`."""
    with GcsServer(state, buckets=buckets) as server:
        yield server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--port", type=int, default=9100, help="TCP port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    parser.add_argument("--state", type=Path, required=True, help="folder for keys and the log")
    parser.add_argument("--binary", type=Path, help="fake-gcs-server (default: built and cached)")
    parser.add_argument(
        "--bucket",
        action="append",
        dest="buckets",
        help=f"bucket to create (repeatable; default: {', '.join(DEFAULT_BUCKETS)})",
    )
    parser.add_argument(
        "--introspect",
        default="",
        help="RFC 7662 endpoint that checks the tokens this server did not issue",
    )
    parser.add_argument(
        "--exit-with-parent", action="store_true", help="stop when the parent process goes"
    )
    args = parser.parse_args(argv)
    binary = args.binary or fake_gcs_binary()
    buckets = args.buckets or DEFAULT_BUCKETS
    serve(
        args.host,
        args.port,
        args.state,
        buckets,
        binary,
        exit_with_parent=args.exit_with_parent,
        introspect=args.introspect,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
