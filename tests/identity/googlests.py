"""Google's Security Token Service and IAM Credentials API on loopback, checking what Google
checks, for the workload identity tests.

- `POST /v1/token`: the RFC 8693 token exchange google-auth's `identity_pool` credentials
  send. The `audience` names a workload identity pool provider
  (`//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/X`);
  the provider must exist (else `invalid_target`), and the subject token must verify
  against the provider's issuer (the cluster's, through `oidc.ClusterIssuer`: RS256
  signature, issuer, expiry) with one of its allowed audiences (by default, as Google's,
  the provider's resource name with `https:`), else `invalid_grant` with Google's wording.
  An attribute condition, when set, must hold for the subject (`unauthorized_client`).
  The answer is a federated access token for the principal
  `principal://iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/subject/SUB`.
- `POST /v1/projects/-/serviceAccounts/EMAIL:generateAccessToken`: with a federated token
  whose principal holds `roles/iam.workloadIdentityUser` on EMAIL, an access token for the
  service account; otherwise 401 or 403 as IAM answers.
- `POST /v1/introspect`: RFC 7662 introspection of the tokens issued here, for the GCS
  front (`hack/gcsserver.py --introspect`), which then checks the identity's permissions on
  the bucket: `permissions` lists what each principal or service account may do.

Every request is recorded (`records`, with the refusal's reason), so a test can count
exchanges and see that none was made; `presented` names each subject token by its digest,
so a test can tell which token an exchange used. Never a token in the record.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from oidc import ClusterIssuer, TokenRefused, digest
from threaded import ThreadedServer

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
IAM = "//iam.googleapis.com/"
PROJECT_NUMBER = "123456789012"
TOKEN_LIFETIME = 3600
MAX_BODY = 64 * 1024


def provider_name(pool: str, provider: str, project: str = PROJECT_NUMBER) -> str:
    """The provider's resource name, as the STS audience names it (with `//iam...`)."""
    pools = f"{IAM}projects/{project}/locations/global/workloadIdentityPools"
    return f"{pools}/{pool}/providers/{provider}"


def principal(pool: str, subject: str, project: str = PROJECT_NUMBER) -> str:
    """The federated principal of `subject` in `pool`, as IAM bindings name it."""
    return (
        f"principal://iam.googleapis.com/projects/{project}/locations/global/"
        f"workloadIdentityPools/{pool}/subject/{subject}"
    )


@dataclass
class PoolProvider:
    """An OIDC provider of a pool: the issuer it trusts and the audiences it accepts."""

    pool: str
    issuer: ClusterIssuer
    allowed_audiences: tuple[str, ...]
    condition: Callable[[str], bool] | None = None  # on the subject, as an attribute condition


@dataclass
class Issued:
    """An access token this service issued: to whom, and until when."""

    principal: str
    expires: float
    federated: bool


@dataclass
class Record:
    method: str
    path: str
    status: int
    reason: str  # the refusal's error code or reason; "" on success


@dataclass
class Google:
    """The configuration and state of the local Google: providers, IAM bindings, tokens."""

    providers: dict[str, PoolProvider] = field(default_factory=dict)  # by audience
    impersonators: dict[str, set[str]] = field(default_factory=dict)  # email -> principals
    permissions: dict[str, frozenset[str]] = field(default_factory=dict)  # identity -> perms
    tokens: dict[str, Issued] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)
    presented: list[str] = field(default_factory=list)  # `oidc.digest` of each subject token
    lock: threading.Lock = field(default_factory=threading.Lock)

    # --- configuring ---

    def add_provider(
        self,
        pool: str,
        provider: str,
        issuer: ClusterIssuer,
        *,
        allowed_audiences: Iterable[str] = (),
        condition: Callable[[str], bool] | None = None,
    ) -> str:
        """Create a pool provider trusting `issuer`; returns its audience (resource name)."""
        name = provider_name(pool, provider)
        audiences = tuple(allowed_audiences) or ("https:" + name,)
        self.providers[name] = PoolProvider(pool, issuer, audiences, condition)
        return name

    def bind_workload_identity_user(self, email: str, member: str) -> None:
        """roles/iam.workloadIdentityUser on service account `email` for `member`."""
        self.impersonators.setdefault(email, set()).add(member)

    def grant(self, identity: str, *permissions: str) -> None:
        """Storage permissions on every bucket for a principal or a service account."""
        self.permissions[identity] = frozenset(permissions)

    # --- serving ---

    def _issue(self, who: str, *, federated: bool) -> tuple[str, float]:
        token = ("ya29.d." if federated else "ya29.c.") + secrets.token_urlsafe(48)
        expires = time.time() + TOKEN_LIFETIME
        with self.lock:
            self.tokens[token] = Issued(who, expires, federated)
        return token, expires

    def exchange(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The STS token exchange."""

        def refuse(error: str, description: str) -> tuple[int, dict[str, Any]]:
            return 400, {"error": error, "error_description": description}

        if form.get("grant_type") != TOKEN_EXCHANGE:
            return refuse("unsupported_grant_type", "Unsupported grant type.")
        if form.get("subject_token_type") != JWT_TYPE:
            return refuse("invalid_request", "Invalid subject token type.")
        if form.get("requested_token_type", ACCESS_TOKEN_TYPE) != ACCESS_TOKEN_TYPE:
            return refuse("invalid_request", "Invalid requested token type.")
        provider = self.providers.get(form.get("audience", ""))
        if provider is None:
            return refuse(
                "invalid_target",
                'The target service indicated by the "audience" parameters is invalid. This '
                "might either be because the pool or provider is disabled or deleted or "
                "because it doesn't exist.",
            )
        token = form.get("subject_token", "")
        with self.lock:
            self.presented.append(digest(token))
        claims = None
        refusal = None
        for audience in provider.allowed_audiences:
            try:
                claims = provider.issuer.verify(token, audience=audience)
                break
            except TokenRefused as refused:
                refusal = refused
                if refused.reason != "audience":
                    break
        if claims is None:
            assert refusal is not None
            return refuse("invalid_grant", _google_wording(refusal.reason, provider))
        if provider.condition is not None and not provider.condition(claims.subject):
            return refuse(
                "unauthorized_client",
                "The given credential is rejected by the attribute condition.",
            )
        who = principal(provider.pool, claims.subject)
        access, _ = self._issue(who, federated=True)
        return 200, {
            "access_token": access,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME,
        }

    def live(self, authorization: str) -> Issued | None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return None
        with self.lock:
            found = self.tokens.get(value.strip())
        return found if found is not None and found.expires > time.time() else None

    def generate(self, email: str, authorization: str) -> tuple[int, dict[str, Any]]:
        """iamcredentials generateAccessToken for `email`."""
        caller = self.live(authorization)
        if caller is None:
            return 401, {
                "error": {
                    "code": 401,
                    "message": "Request had invalid authentication credentials. Expected OAuth "
                    "2 access token, login cookie or other valid authentication credential.",
                    "status": "UNAUTHENTICATED",
                }
            }
        if caller.principal not in self.impersonators.get(email, set()):
            permission = "iam.serviceAccounts.getAccessToken"
            return 403, {
                "error": {
                    "code": 403,
                    "message": f"Permission '{permission}' denied on resource (or it may not "
                    "exist).",
                    "status": "PERMISSION_DENIED",
                    "details": [
                        {
                            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "IAM_PERMISSION_DENIED",
                            "domain": "iam.googleapis.com",
                            "metadata": {"permission": permission},
                        }
                    ],
                }
            }
        token, expires = self._issue(email, federated=False)
        expire_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
        return 200, {"accessToken": token, "expireTime": expire_time}

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662: whether `token` is live, whose it is and what it may do on buckets."""
        found = self.live(f"Bearer {token}")
        if found is None:
            return {"active": False}
        return {
            "active": True,
            "sub": found.principal,
            "exp": int(found.expires),
            "permissions": sorted(self.permissions.get(found.principal, frozenset())),
        }

    def record(self, method: str, path: str, status: int, reason: str) -> None:
        with self.lock:
            self.records.append(Record(method, path, status, reason))

    def count(self, path_part: str) -> int:
        """How many requests so far had `path_part` in their path."""
        with self.lock:
            return sum(1 for record in self.records if path_part in record.path)


def _google_wording(reason: str, provider: PoolProvider) -> str:
    """Google STS's error_description for each of the checks."""
    return {
        "audience": "The audience in ID Token does not match the expected audience.",
        "issuer": "The issuer in ID Token does not match the expected issuer "
        f"{provider.issuer.issuer}.",
        "expired": "ID Token has expired.",
        "signature": "Invalid ID Token: the signature could not be verified.",
        "subject": "The subject in ID Token is not allowed.",
    }.get(reason, "Invalid ID Token.")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: GoogleServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: `Google.records` says what matters."""

    def _answer(self, status: int, document: dict[str, Any], reason: str = "") -> None:
        body = json.dumps(document).encode()
        if not reason and status >= 400:
            error = document.get("error")
            reason = str(error.get("status") if isinstance(error, dict) else error)
        # Recorded before the answer goes: a test that counts after its call sees it.
        self.server.google.record(
            self.command, urllib.parse.urlsplit(self.path).path, status, reason
        )
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._answer(413, {"error": "invalid_request"})
            return
        body = self.rfile.read(length).decode("utf-8", "replace")
        path = urllib.parse.urlsplit(self.path).path
        google = self.server.google
        if path == "/v1/token":
            form = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
            self._answer(*google.exchange(form))
        elif path == "/v1/introspect":
            form = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
            self._answer(200, google.introspect(form.get("token", "")))
        elif path.startswith("/v1/projects/-/serviceAccounts/") and path.endswith(
            ":generateAccessToken"
        ):
            email = urllib.parse.unquote(path.split("/")[-1].rsplit(":", 1)[0])
            self._answer(*google.generate(email, self.headers.get("Authorization", "")))
        else:
            self._answer(404, {"error": {"code": 404, "status": "NOT_FOUND"}})


class GoogleServer(ThreadedServer):
    """The local Google on a free loopback port, served by a thread of the test process.

    with GoogleServer() as google:
        google.url, google.google.add_provider(...)
    """

    def __init__(self) -> None:
        super().__init__(_Handler, "googlests")
        self.google = Google()
        self.url = f"http://127.0.0.1:{self.server_port}"

    @property
    def token_url(self) -> str:
        return f"{self.url}/v1/token"

    @property
    def introspection_url(self) -> str:
        return f"{self.url}/v1/introspect"
