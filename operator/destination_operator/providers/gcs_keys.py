"""A GCS service account key file: its parsing, and its exchange for an access token.

The probe signs an RFC 7523 JWT grant with the key and exchanges it at the
key file's `token_uri` for an access token (one request; google-auth's own
service-account credentials would retry with sleeps no deadline can cut).
The token is kept in the shared `TokenCache`, keyed by the key's fingerprint
(a SHA-256 of the account, key id and private key, never the key itself),
the token endpoint and the scope, until shortly before it expires: a probe
with a cached token makes only the storage calls. A storage answer 401 drops
the entry, so a revoked key is found at the next probe; a key deleted in the
cloud while its token lives still verifies until the token expires (an hour
at most, Google's lifetime).

The key file is the Secret author's, and its `token_uri` names where the
operator would send a signed grant: only Google's token endpoints are
accepted (anything else is `EndpointBlocked`).
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.parse
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from destination_operator.api.status import Reason
from destination_operator.errors import (
    AccessDeniedError,
    AuthenticationFailedError,
    DestinationError,
    EndpointBlockedError,
    ProbeFailedError,
)
from destination_operator.providers.tokencache import AccessToken

__all__ = [
    "GOOGLE_TOKEN_URIS",
    "GRANT_AUDIENCE",
    "SERVICE_ACCOUNT_KEY",
    "STORAGE_SCOPE",
    "ServiceAccountKey",
    "ServiceAccountKeyError",
    "exchange_key",
    "grant_error",
    "parse_service_account_key",
]

GOOGLE_TOKEN_URIS = frozenset(
    {
        "https://oauth2.googleapis.com/token",
        "https://accounts.google.com/o/oauth2/token",
        "https://www.googleapis.com/oauth2/v4/token",
    }
)
"""The `token_uri` values a key file may have: Google's token endpoint, under its names."""

GRANT_AUDIENCE = "https://oauth2.googleapis.com/token"
"""The grant's `aud` claim: Google's token endpoint, whichever URI the grant is sent to."""

STORAGE_SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GRANT_LIFETIME = 3600  # seconds; Google's maximum

SERVICE_ACCOUNT_KEY = "serviceAccountJson"
# Errors whose OAuth2 code says the key itself was refused.
_REFUSED_GRANTS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})


class ServiceAccountKeyError(DestinationError):
    """`serviceAccountJson` is there but is no usable service account key.

    Reason `SecretKeyMissing`: the Secret lacks what the type needs, and only
    a new Secret fixes it. The message says what is wrong, never a value.
    """

    reason = Reason.SecretKeyMissing


@dataclass(frozen=True)
class ServiceAccountKey:
    """The parts of a key file the probe uses; `repr` shows no value."""

    client_email: str = field(repr=False)
    private_key: str = field(repr=False)
    private_key_id: str = field(repr=False)
    token_uri: str
    project_id: str = ""

    def values(self) -> tuple[str, ...]:
        """Every value to keep out of messages (the account's e-mail too, as S3 key ids are)."""
        return tuple(v for v in (self.client_email, self.private_key, self.private_key_id) if v)

    def cache_key(self) -> Hashable:
        """What the token depends on: the key (by a digest), the endpoint and the scope."""
        digest = hashlib.sha256(
            "\0".join((self.client_email, self.private_key_id, self.private_key)).encode()
        ).hexdigest()
        return ("gcs-service-account", digest, self.token_uri, STORAGE_SCOPE)


def parse_service_account_key(text: str, *, token_uris: frozenset[str]) -> ServiceAccountKey:
    """The key file in `text`, checked; raises `ServiceAccountKeyError` saying what is wrong.

    A `token_uri` outside `token_uris` raises `EndpointBlockedError`.
    """
    where = f"the Secret's {SERVICE_ACCOUNT_KEY}"
    try:
        document = json.loads(text)
    except ValueError as exc:
        # The position only: JSONDecodeError's text quotes nothing of the document.
        lineno, colno = getattr(exc, "lineno", None), getattr(exc, "colno", None)
        position = f" (line {lineno}, column {colno})" if lineno else ""
        raise ServiceAccountKeyError(
            f"{where} is not JSON{position}; it must be a service account key file"
        ) from None
    if not isinstance(document, dict):
        raise ServiceAccountKeyError(f"{where} is not a JSON object (a key file is one)")
    kind = document.get("type")
    if kind is not None and kind != "service_account":
        raise ServiceAccountKeyError(
            f"{where} is not a service account key (its type is not 'service_account')"
        )
    fields: dict[str, str] = {}
    for name in ("client_email", "private_key"):
        value = document.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ServiceAccountKeyError(f"{where} has no {name!r}; it must be a key file")
        fields[name] = value.strip()
    if "PRIVATE KEY-----" not in fields["private_key"]:
        raise ServiceAccountKeyError(f"{where}: 'private_key' is not a PEM private key")
    token_uri = document.get("token_uri") or GRANT_AUDIENCE
    if not isinstance(token_uri, str) or token_uri.strip() not in token_uris:
        raise EndpointBlockedError(
            f"{where}: its token_uri is not Google's token endpoint ({GRANT_AUDIENCE}); "
            "no grant is sent elsewhere"
        )
    key_id, project = document.get("private_key_id"), document.get("project_id")
    return ServiceAccountKey(
        client_email=fields["client_email"],
        private_key=fields["private_key"],
        private_key_id=key_id.strip() if isinstance(key_id, str) else "",
        token_uri=token_uri.strip(),
        project_id=project.strip() if isinstance(project, str) else "",
    )


def grant_error(status: int, body: bytes) -> DestinationError:
    """The token endpoint's refusal (RFC 6749 section 5.2), as a `DestinationError`."""
    try:
        document = json.loads(body)
        error = str(document.get("error") or "")
        description = str(document.get("error_description") or "")
    except (ValueError, AttributeError):
        error, description = "", ""
    detail = f"token endpoint: HTTP {status}" + (f" {error}" if error else "")
    detail += f" ({description})" if description else ""
    if error in _REFUSED_GRANTS or status == 401:
        return AuthenticationFailedError(detail)
    if error == "access_denied" or status == 403:
        return AccessDeniedError(detail)
    return ProbeFailedError(detail)


def exchange_key(sdk: Any, key: ServiceAccountKey, session: Any, timeout: Any) -> AccessToken:
    """Exchange a grant signed with `key` for an access token (one request through `session`,
    a google-auth `Request` over the probe's requests session)."""
    try:
        signer = sdk.crypt.RSASigner.from_string(key.private_key, key.private_key_id)
    except Exception:  # noqa: BLE001 - whatever the parser says, it may quote the key
        raise ServiceAccountKeyError(
            f"the Secret's {SERVICE_ACCOUNT_KEY}: 'private_key' is not a usable RSA key"
        ) from None
    now = int(time.time())
    claims = {
        "iss": key.client_email,
        "scope": STORAGE_SCOPE,
        "aud": GRANT_AUDIENCE,
        "iat": now,
        "exp": now + GRANT_LIFETIME,
    }
    assertion = sdk.jwt.encode(signer, claims)
    body = urllib.parse.urlencode({"grant_type": JWT_BEARER, "assertion": assertion})
    response = session(
        url=key.token_uri,
        method="POST",
        body=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=timeout,
    )
    if response.status != 200:
        raise grant_error(response.status, response.data)
    return access_token(response.data, "token endpoint", started=now)


def access_token(data: bytes, where: str, *, started: float) -> AccessToken:
    """The token of an OAuth2 answer (`access_token`, `expires_in`)."""
    try:
        document = json.loads(data)
        token = document["access_token"]
        lifetime = float(document.get("expires_in") or 0)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ProbeFailedError(f"{where}: HTTP 200 without an access token") from None
    if not isinstance(token, str) or not token:
        raise ProbeFailedError(f"{where}: HTTP 200 without an access token")
    # Without a lifetime the token is used for this probe only (expired when stored).
    return AccessToken(token, started + max(lifetime, 0.0))
