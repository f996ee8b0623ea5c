"""A verifying front for Azurite's blob service, over HTTPS: it checks an Entra bearer token as
Azure Storage does, then the identity's data role, and only then forwards to Azurite.

Azurite with OAuth on checks a token's audience, its issuer's prefix and its time, but no
signature, no tenant and no role (tests/identity/test_azure_identity.py shows it). This
front adds them:

- the RS256 signature with the local Entra's key (tests/identity/entra.py), the issuer
  `https://sts.windows.net/<tenant>/` of the one tenant the account trusts, the audience
  `https://storage.azure.com`, the time: else HTTP 401 `InvalidAuthenticationInfo` with
  Storage's `WWW-Authenticate` challenge;
- the data role the token's `oid` holds on the account (`roles`): Storage Blob Data
  Contributor writes and deletes, Reader reads: else HTTP 403
  `AuthorizationPermissionMismatch`.

Every request is recorded (`records`: method, path, whose, status), never a token.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from threaded import ThreadedServer

CONTRIBUTOR = frozenset({"read", "write", "delete"})  # Storage Blob Data Contributor
READER = frozenset({"read"})  # Storage Blob Data Reader
_NEEDS = {"PUT": "write", "POST": "write", "DELETE": "delete"}  # else read
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "host"})
MAX_BODY = 1024 * 1024


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@dataclass
class Record:
    method: str
    path: str
    who: str
    status: int


@dataclass
class Account:
    """What the storage account trusts: Entra's key, the tenant, and the roles by oid."""

    key: rsa.RSAPublicKey
    tenant: str
    roles: dict[str, frozenset[str]] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def caller(self, authorization: str) -> str | None:
        """The token's `oid` when Storage would take the token, else None."""
        scheme, _, token = authorization.partition(" ")
        parts = token.strip().split(".")
        if scheme.lower() != "bearer" or len(parts) != 3:
            return None
        try:
            claims = json.loads(_b64(parts[1]))
            self.key.verify(
                _b64(parts[2]), f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(),
                hashes.SHA256(),
            )  # fmt: skip
        except (ValueError, InvalidSignature):
            return None
        now = time.time()
        trusted = (
            isinstance(claims, dict)
            and claims.get("iss") == f"https://sts.windows.net/{self.tenant}/"
            and claims.get("aud") in ("https://storage.azure.com", "https://storage.azure.com/")
            and float(claims.get("nbf", 0)) <= now + 300
            and now < float(claims.get("exp", 0))
        )
        return str(claims.get("oid", "")) if trusted else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: BlobFront

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: `Account.records` says what matters."""

    def do_GET(self) -> None:
        self._handle()

    do_PUT = do_DELETE = do_HEAD = do_POST = do_GET

    def _error(self, status: int, code: str, message: str, *extra: tuple[str, str]) -> None:
        body = (
            f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}\nRequestId:local</Message></Error>"
        ).encode()
        self.send_response(status)
        for name, value in (("Content-Type", "application/xml"), ("x-ms-error-code", code)):
            self.send_header(name, value)
        for name, value in extra:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        account = self.server.account
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, MAX_BODY)) if length else b""
        path = urllib.parse.urlsplit(self.path).path
        who = account.caller(self.headers.get("Authorization", ""))
        if who is None:
            challenge = (
                f"Bearer authorization_uri=https://login.microsoftonline.com/{account.tenant}"
                "/oauth2/authorize resource_id=https://storage.azure.com"
            )
            account.records.append(Record(self.command, path, "-", 401))
            self._error(
                401, "InvalidAuthenticationInfo", "Server failed to authenticate the request. "
                "Please refer to the information in the www-authenticate header.",
                ("WWW-Authenticate", challenge),
            )  # fmt: skip
            return
        if _NEEDS.get(self.command, "read") not in account.roles.get(who, frozenset()):
            account.records.append(Record(self.command, path, who, 403))
            self._error(
                403, "AuthorizationPermissionMismatch",
                "This request is not authorized to perform this operation using this permission.",
            )  # fmt: skip
            return
        status, headers, payload = self._forward(body)
        with account.lock:  # before the answer goes: a count read after the call includes it
            account.records.append(Record(self.command, path, who, status))
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP | {"content-length"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        upstream = http.client.HTTPSConnection(
            "127.0.0.1", self.server.upstream_port, timeout=30, context=self.server.client_tls
        )
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            return answer.status, answer.getheaders(), answer.read()
        finally:
            upstream.close()


class BlobFront(ThreadedServer):
    """The front on a free loopback port, in a thread of the test process; `endpoint` is the
    account's URL through it (Azurite's path style).

    with BlobFront(account, azurite, cert_file, key_file) as front:
        front.endpoint
    """

    def __init__(self, account: Account, azurite: Any, cert_file: Path, key_file: Path) -> None:
        super().__init__(_Handler, "blobfront")
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_tls.load_cert_chain(str(cert_file), str(key_file))
        self.socket = server_tls.wrap_socket(self.socket, server_side=True)
        self.client_tls = ssl.create_default_context(cafile=str(cert_file))
        self.account = account
        self.upstream_port = int(azurite.port)
        self.endpoint = f"https://127.0.0.1:{self.server_port}/{azurite.account}"
