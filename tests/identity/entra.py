"""Microsoft Entra ID's token endpoint on loopback over HTTPS, checking a client assertion as
Entra checks a federated credential's, for the Azure workload identity tests.

- `POST /<tenant>/oauth2/v2.0/token`: the client-credentials grant with a JWT bearer client
  assertion, as azure-identity's `ClientAssertionCredential` sends it. The tenant must exist
  (AADSTS90002), the application in it (AADSTS700016), the scope be Storage's (AADSTS70011).
  The assertion (a ServiceAccount token) must match one of the application's federated
  credentials by issuer and subject (AADSTS70021), and verify against that issuer through
  `oidc.ClusterIssuer` (its discovery and JWKS): the credential's audience (AADSTS700212),
  RS256 signature (AADSTS700027), expiry (AADSTS700024). Refusals are HTTP 400 with Entra's
  `error`, `error_description` and `error_codes`.
- The answer: a bearer token for `https://storage.azure.com`, a JWT signed here, issued by
  `https://sts.windows.net/<tenant>/`, which Azurite with OAuth on accepts.
- `GET /<tenant>/v2.0/.well-known/openid-configuration`: discovery, as MSAL reads it.

Azurite (`--oauth basic`) checks a bearer token's audience against Storage's, its issuer's
prefix (`https://sts.windows.net/`, any tenant) and its time; it verifies no signature and no
role. This service is the strict verifier; Azurite only shows the storage takes the token.

Every request is recorded (`records`: path, status, AADSTS code), never a token;
`presented` names each assertion by its digest (which token an exchange used).
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from oidc import ClusterIssuer, TokenRefused, digest
from threaded import ThreadedServer

from certs import issue

STORAGE = "https://storage.azure.com"
STORAGE_SCOPE = f"{STORAGE}/.default"
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
CLIENT_CREDENTIALS = "client_credentials"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_LIFETIME = 3599
MAX_BODY = 64 * 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(token: str) -> dict[str, Any] | None:
    """The payload of a compact JWS, unverified (to pick the federated credential), or None."""
    parts = token.split(".")
    if len(parts) != 3 or len(token) > MAX_BODY:
        return None
    try:
        found = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


@dataclass(frozen=True)
class Federated:
    """A federated identity credential: the issuer it trusts, the subject, the audience."""

    issuer: ClusterIssuer
    subject: str
    audience: str = EXCHANGE_AUDIENCE


@dataclass
class Record:
    path: str
    status: int
    aadsts: str  # "" on success


_REFUSALS = {  # TokenRefused.reason -> (AADSTS code, Entra's words)
    "audience": ("AADSTS700212", "No matching federated identity record found for presented "
                 "assertion audience '{aud}'."),
    "expired": ("AADSTS700024", "Client assertion is not within its valid time range."),
    "signature": ("AADSTS700027", "Client assertion failed signature validation."),
    "issuer": ("AADSTS70021", "No matching federated identity record found for presented "
               "assertion. Assertion Issuer: '{iss}'."),
    "subject": ("AADSTS70021", "No matching federated identity record found for presented "
                "assertion. Assertion Subject: '{sub}'."),
    "malformed": ("AADSTS50027", "JWT token is invalid or malformed."),
}  # fmt: skip


@dataclass
class Entra:
    """Tenants, their applications' federated credentials, and what was asked."""

    applications: dict[tuple[str, str], list[Federated]] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)
    presented: list[str] = field(default_factory=list)  # `oidc.digest` of each assertion
    lock: threading.Lock = field(default_factory=threading.Lock)
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def add_application(self, tenant: str, client: str, *credentials: Federated) -> None:
        self.applications[(tenant.lower(), client.lower())] = list(credentials)

    def tenants(self) -> set[str]:
        return {tenant for tenant, _ in self.applications}

    def count(self) -> int:
        """Token requests so far."""
        with self.lock:
            return sum(1 for record in self.records if record.path.endswith("/token"))

    def token(self, tenant: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        def refuse(error: str, code: str, words: str) -> tuple[int, dict[str, Any]]:
            description = f"{code}: {words} Trace ID: {uuid.uuid4()}"
            return 400, {"error": error, "error_description": description,
                         "error_codes": [int(code[6:])]}  # fmt: skip

        if tenant not in self.tenants():
            return refuse("invalid_request", "AADSTS90002", f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != CLIENT_CREDENTIALS:
            return refuse("unsupported_grant_type", "AADSTS70003", "The app requested an "
                          "unsupported grant type.")  # fmt: skip
        client = form.get("client_id", "").lower()
        credentials = self.applications.get((tenant, client))
        if credentials is None:
            return refuse("unauthorized_client", "AADSTS700016", f"Application with identifier "
                          f"'{client}' was not found in the directory '{tenant}'.")  # fmt: skip
        if form.get("scope") != STORAGE_SCOPE:
            return refuse("invalid_scope", "AADSTS70011", "The provided value for the input "
                          "parameter 'scope' is not valid.")  # fmt: skip
        assertion = form.get("client_assertion", "")
        with self.lock:
            self.presented.append(digest(assertion))
        claims = _claims(assertion)
        if form.get("client_assertion_type") != JWT_BEARER or claims is None:
            return refuse("invalid_client", *_REFUSALS["malformed"])
        iss, sub = str(claims.get("iss", "")), str(claims.get("sub", ""))
        matching = [c for c in credentials if c.issuer.issuer == iss and c.subject == sub]
        if not matching:
            words = (f"No matching federated identity record found for presented assertion. "
                     f"Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'.")  # fmt: skip
            return refuse("invalid_client", "AADSTS70021", words)
        chosen = matching[0]
        try:
            chosen.issuer.verify(assertion, audience=chosen.audience, subject=chosen.subject)
        except TokenRefused as refused:
            code, words = _REFUSALS[refused.reason]
            aud = claims.get("aud")
            return refuse("invalid_client", code, words.format(iss=iss, sub=sub, aud=aud))
        return 200, {
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME,
            "ext_expires_in": TOKEN_LIFETIME,
            "access_token": self._access_token(tenant, client),
        }

    def _access_token(self, tenant: str, client: str) -> str:
        now = int(time.time())
        claims = {
            "aud": STORAGE,
            "iss": f"https://sts.windows.net/{tenant}/",
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME,
            "appid": client,
            "oid": client,
            "sub": client,
            "tid": tenant,
            "uti": secrets.token_urlsafe(16),
            "ver": "1.0",
        }
        header = {"typ": "JWT", "alg": "RS256", "kid": "entra-local"}
        signed = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self.key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signed}.{_b64(signature)}"

    def record(self, path: str, status: int, document: dict[str, Any]) -> None:
        codes = document.get("error_codes") or []
        with self.lock:
            self.records.append(Record(path, status, f"AADSTS{codes[0]}" if codes else ""))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EntraServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: `Entra.records` says what matters."""

    def _answer(self, status: int, document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()
        # Recorded before the answer goes: a test that counts after its call sees it.
        self.server.entra.record(urllib.parse.urlsplit(self.path).path, status, document)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        parts = urllib.parse.urlsplit(self.path).path.strip("/").split("/")
        if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            base = f"{self.server.url}/{parts[0]}"
            self._answer(200, {
                "issuer": f"{self.server.url}/{parts[0]}/v2.0",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            })  # fmt: skip
            return
        self._answer(404, {"error": "not_found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._answer(413, {"error": "invalid_request"})
            return
        body = self.rfile.read(length).decode("utf-8", "replace")
        parts = urllib.parse.urlsplit(self.path).path.strip("/").split("/")
        if len(parts) != 4 or parts[1:] != ["oauth2", "v2.0", "token"]:
            self._answer(404, {"error": "not_found"})
            return
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
        self._answer(*self.server.entra.token(parts[0].lower(), form))


class EntraServer(ThreadedServer):
    """The local Entra ID over HTTPS on a free loopback port, in a thread of the test process.

    with EntraServer(folder) as server:
        server.authority, server.ca_file, server.entra.add_application(...)
    """

    def __init__(self, folder: Path, tls: tuple[Path, Path] | None = None) -> None:
        """`tls`: its (certificate, key) files, a certificate that is its own trust anchor
        (the clients' CA bundle); by default one for loopback is made in `folder`."""
        super().__init__(_Handler, "entra")
        if tls is None:
            tls = issue("127.0.0.1", hosts=["localhost", "127.0.0.1"], ca=True).write(folder)
        self.cert_file, self.key_file = tls
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.entra = Entra()
        self.url = self.authority = f"https://127.0.0.1:{self.server_port}"

    @property
    def ca_file(self) -> Path:
        return self.cert_file
