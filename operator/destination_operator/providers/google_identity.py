"""Google Cloud workload identity federation: a Kubernetes ServiceAccount token for an access
token to Cloud Storage.

- Which identity: the ServiceAccount's annotations. The workload identity pool provider
  that trusts the cluster comes from `PROVIDER_ANNOTATION` (Google has no Kubernetes
  convention for it outside GKE), else from the operator's default; the Google service
  account to impersonate, when there is one, from GKE's `iam.gke.io/gcp-service-account`.
  The ServiceAccount token's audience is the provider's default allowed audience
  (`https://iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/
  providers/X`).
- The exchange: Google's STS token exchange (RFC 8693) with the provider as audience, then,
  with a service account, iamcredentials `generateAccessToken` (impersonation), through
  google-auth's `identity_pool` credentials, built here from the token the operator holds
  (a subject token supplier). Never from a credential configuration a user supplied (its
  `credential_source` could make the operator read its own files or ask the node's
  metadata server), and never through `google.auth.default()`.
- Where: the token and impersonation URLs are the operator's (settings; Google's public
  ones by default, checked with the operator's CA bundle when it names one), never a
  Destination's. One attempt per request, each bounded by the
  caller's timeout; no redirect followed.

Refusals raise `FederationRefused`, which names the step (`sts` or `iamcredentials`), the
service's error code and its description, never the token.
"""

from __future__ import annotations

import datetime
import importlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from destination_operator.providers.issued import AccessToken

__all__ = [
    "IAM_CREDENTIALS_URL",
    "PROVIDER_ANNOTATION",
    "SERVICE_ACCOUNT_ANNOTATION",
    "STORAGE_SCOPE",
    "STS_TOKEN_URL",
    "FederationRefused",
    "GoogleIdentity",
    "IdentityNotConfigured",
    "exchange",
    "google_identity",
]

SERVICE_ACCOUNT_ANNOTATION = "iam.gke.io/gcp-service-account"
PROVIDER_ANNOTATION = "destinations.io/gcp-workload-identity-provider"
STS_TOKEN_URL = "https://sts.googleapis.com/v1/token"
IAM_CREDENTIALS_URL = "https://iamcredentials.googleapis.com"
STORAGE_SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
IAM = "//iam.googleapis.com/"

_PROVIDER = re.compile(
    r"(?://iam\.googleapis\.com/)?(projects/[0-9]{1,20}/locations/global/"
    r"workloadIdentityPools/[a-z0-9-]{4,32}/providers/[a-z0-9-]{4,32})"
)
_SERVICE_ACCOUNT = re.compile(
    r"[a-z0-9][-a-z0-9._]{0,62}@[a-z0-9][-a-z0-9.]{0,200}\.gserviceaccount\.com"
)


class IdentityNotConfigured(ValueError):
    """The ServiceAccount (or the operator's default) names no usable Google identity."""


class FederationRefused(Exception):
    """A step of the exchange failed; `step` is `sts` or `iamcredentials`, `code` the
    service's error code (or `unreachable`), the message its description. No token."""

    def __init__(self, step: str, code: str, detail: str) -> None:
        self.step, self.code, self.detail = step, code, detail
        super().__init__(f"{step}: {code}" + (f": {detail}" if detail else ""))


@dataclass(frozen=True)
class GoogleIdentity:
    """A workload identity pool provider, and the Google service account to become (or "")."""

    provider: str  # "//iam.googleapis.com/projects/N/.../providers/X": STS's audience
    service_account: str = ""

    @property
    def token_audience(self) -> str:
        """The ServiceAccount token's audience: the provider's default allowed audience."""
        return "https:" + self.provider

    @property
    def key(self) -> tuple[str, str]:
        """What, besides the ServiceAccount's uid, changes the result (for a cache key)."""
        return (self.provider, self.service_account)

    @property
    def described(self) -> str:
        parts = self.provider.split("/")  # ..., workloadIdentityPools, P, providers, X
        where = f"pool {parts[-3]}, provider {parts[-1]}"
        if self.service_account:
            return f"Google service account {self.service_account} ({where})"
        return f"the federated identity of {where}"


def _provider(value: str, source: str) -> str:
    found = _PROVIDER.fullmatch(value.strip())
    if found is None:
        raise IdentityNotConfigured(
            f"{source} is not a workload identity pool provider (projects/<number>/locations/"
            "global/workloadIdentityPools/<pool>/providers/<provider>)"
        )
    return IAM + found.group(1)


def google_identity(
    annotations: Mapping[str, str], where: str, *, default_provider: str | None = None
) -> GoogleIdentity:
    """The identity `annotations` name (`where`: "ServiceAccount 'x'", for messages);
    `IdentityNotConfigured` saying which annotation is missing or malformed."""
    named = annotations.get(PROVIDER_ANNOTATION, "").strip()
    if named:
        provider = _provider(named, f"{where}: its {PROVIDER_ANNOTATION} annotation")
    elif default_provider:
        provider = _provider(default_provider, "the operator's default workload identity provider")
    else:
        raise IdentityNotConfigured(
            f"{where} has no {PROVIDER_ANNOTATION} annotation naming the workload identity "
            "pool provider that trusts this cluster, and the operator names no default"
        )
    email = annotations.get(SERVICE_ACCOUNT_ANNOTATION, "").strip()
    if email and not _SERVICE_ACCOUNT.fullmatch(email):
        raise IdentityNotConfigured(
            f"{where}: its {SERVICE_ACCOUNT_ANNOTATION} annotation is not a Google service "
            "account e-mail (name@project.iam.gserviceaccount.com)"
        )
    return GoogleIdentity(provider=provider, service_account=email)


@dataclass
class _Calls:
    """google-auth's requests, each bounded by the timeout; the last answer's URL and status
    say which step failed."""

    inner: Any
    timeout: float
    sts_url: str
    ca_bundle: str | None = None  # per request: a session's would yield to REQUESTS_CA_BUNDLE
    last: tuple[str, int] = ("", 0)

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: Any = None,
        **kwargs: Any,
    ) -> Any:
        self.last = ("sts" if url == self.sts_url else "iamcredentials", 0)
        if self.ca_bundle:
            kwargs["verify"] = self.ca_bundle
        answer = self.inner(
            url=url, method=method, body=body, headers=headers, timeout=self.timeout, **kwargs
        )
        self.last = (self.last[0], int(answer.status))
        return answer


def _said(body: Any) -> tuple[str, str]:
    """(code, description) of an OAuth 2.0 or Google API error body."""
    try:
        document = json.loads(body)
    except (ValueError, TypeError):
        return "", ""
    if not isinstance(document, dict):
        return "", ""
    error = document.get("error")
    if isinstance(error, dict):  # {"error": {"code", "message", "status"}}
        return str(error.get("status") or error.get("code") or ""), str(error.get("message") or "")
    return str(error or ""), str(document.get("error_description") or "")


def exchange(
    token: str,
    identity: GoogleIdentity,
    *,
    timeout_seconds: float,
    sts_url: str = STS_TOKEN_URL,
    iamcredentials_url: str = IAM_CREDENTIALS_URL,
    ca_bundle: str | None = None,
) -> AccessToken:
    """An access token for Cloud Storage from the ServiceAccount `token` (blocking).
    `ca_bundle`: the CA certificates both services are checked with (private endpoints,
    tests); the system's by default."""
    try:
        identity_pool = importlib.import_module("google.auth.identity_pool")
        auth_exceptions = importlib.import_module("google.auth.exceptions")
        auth_requests = importlib.import_module("google.auth.transport.requests")
        requests = importlib.import_module("requests")
    except ImportError:
        raise FederationRefused("sts", "unavailable", "google-auth is not installed") from None

    def subject_token(_self: Any, _context: Any, _request: Any) -> str:
        return token

    supplier = type(
        "Supplier", (identity_pool.SubjectTokenSupplier,), {"get_subject_token": subject_token}
    )()
    impersonation = None
    if identity.service_account:
        impersonation = (
            f"{iamcredentials_url.rstrip('/')}/v1/projects/-/serviceAccounts/"
            f"{identity.service_account}:generateAccessToken"
        )
    credentials = identity_pool.Credentials(
        audience=identity.provider,
        subject_token_type=JWT_TOKEN_TYPE,
        token_url=sts_url,
        subject_token_supplier=supplier,
        service_account_impersonation_url=impersonation,
        scopes=[STORAGE_SCOPE],
    )
    session = requests.Session()
    session.max_redirects = 0
    calls = _Calls(auth_requests.Request(session), max(1.0, timeout_seconds), sts_url, ca_bundle)
    started = time.time()
    try:
        credentials.refresh(calls)
    except auth_exceptions.GoogleAuthError as err:
        step, status = calls.last
        body = err.args[1] if len(err.args) > 1 else None
        code, description = _said(body)
        if not status:
            # No answer: the message is the transport's (it names the URL, not the token).
            detail = str(err).replace(token, "[token]")[:300]
            raise FederationRefused(step, "unreachable", detail) from None
        code = code or f"HTTP {status}"
        raise FederationRefused(step, code, description.replace(token, "[token]")[:300]) from None
    finally:
        session.close()
    expiry = credentials.expiry
    if isinstance(expiry, datetime.datetime):
        expires_at = expiry.replace(tzinfo=datetime.UTC).timestamp()
    else:
        expires_at = started  # no lifetime said: good for this probe only
    return AccessToken(str(credentials.token), expires_at)
