"""The ServiceAccount a Destination names, and a short-lived token for it (TokenRequest).

Both in the Destination's own namespace only. Only the uid and the annotations of the
ServiceAccount are kept (the annotations say which cloud identity it stands for); the
token is returned to the caller, which caches it in memory and writes it nowhere.
"""

from __future__ import annotations

import contextlib
import datetime
import json
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from kubernetes import client

from ..errors import ServiceAccountNotFoundError, TokenRequestForbiddenError
from ..redaction import scrub
from .client import api_client, call

__all__ = ["IssuedToken", "ServiceAccountView", "read_service_account", "request_token"]

_MAX_ANNOTATIONS = 64
_MAX_VALUE = 1024


@dataclass(frozen=True)
class ServiceAccountView:
    """What the operator keeps of a ServiceAccount: who it is and its annotations."""

    namespace: str
    name: str
    uid: str
    annotations: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def subject(self) -> str:
        """The `sub` claim of its tokens: `system:serviceaccount:NS:NAME`."""
        return f"system:serviceaccount:{self.namespace}:{self.name}"


@dataclass(frozen=True)
class IssuedToken:
    """A ServiceAccount token and when it expires (epoch seconds); `repr` hides the token."""

    token: str = field(repr=False)
    expires_at: float


def _bounded(annotations: Any) -> MappingProxyType[str, str]:
    """At most `_MAX_ANNOTATIONS` annotations, each value cut at `_MAX_VALUE` characters: a
    tenant writes them, the operator only reads the few its clouds name."""
    items = list((annotations or {}).items())[:_MAX_ANNOTATIONS]
    return MappingProxyType({str(k): str(v)[:_MAX_VALUE] for k, v in items})


def _refusal(err: client.ApiException, verb: str, what: str, namespace: str) -> str:
    """Why the API server refused, in words that say which grant (or policy) is missing."""
    if err.status == 401:
        return (
            f"the API server refused the operator's own credentials (HTTP 401) on {verb} "
            f"{what} in namespace {namespace!r}"
        )
    said = ""
    with contextlib.suppress(ValueError, AttributeError):
        said = str(json.loads(str(err.body)).get("message", ""))[:300]
    detail = f": {scrub(said)}" if said else ""
    return (
        f"the API server refused the operator {verb} on {what} in namespace {namespace!r}{detail}"
    )


def read_service_account(namespace: str, name: str) -> ServiceAccountView:
    """The ServiceAccount's uid and annotations. Raises `ServiceAccountNotFoundError`,
    `TokenRequestForbiddenError` (the operator may not get it), or `ApiUnavailable`."""
    core = client.CoreV1Api(api_client())
    try:
        found = call(core.read_namespaced_service_account, name, namespace)
    except client.ApiException as err:
        if err.status == 404:
            raise ServiceAccountNotFoundError(
                f"reading ServiceAccount {name!r}: not found in the Destination's namespace"
            ) from None
        if err.status in (401, 403):
            raise TokenRequestForbiddenError(
                f"reading ServiceAccount {name!r}: "
                + _refusal(err, "get", "serviceaccounts", namespace)
            ) from None
        raise TokenRequestForbiddenError(
            f"reading ServiceAccount {name!r} failed with HTTP {err.status}"
        ) from None
    meta = found.metadata
    return ServiceAccountView(
        namespace=namespace,
        name=name,
        uid=str(meta.uid or ""),
        annotations=_bounded(meta.annotations),
    )


def request_token(account: ServiceAccountView, audience: str, seconds: int = 600) -> IssuedToken:
    """A token for `account` with one audience, valid `seconds` (the API server may shorten
    it; the answer's expiry counts). The token names the ServiceAccount's uid: once the
    ServiceAccount is deleted, the API server (and a cloud that asks it) no longer honours
    it; the cache keys tokens by uid, so one made anew under the same name gets its own."""
    core = client.CoreV1Api(api_client())
    body = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[audience], expiration_seconds=seconds)
    )
    try:
        answer = call(
            core.create_namespaced_service_account_token, account.name, account.namespace, body
        )
    except client.ApiException as err:
        if err.status == 404:
            raise ServiceAccountNotFoundError(
                f"token request for ServiceAccount {account.name!r}: not found in the "
                "Destination's namespace"
            ) from None
        if err.status in (401, 403):
            # The refused grant first: messages are cut at 240 characters, and Google's
            # audience alone is some 130.
            raise TokenRequestForbiddenError(
                f"token request for ServiceAccount {account.name!r}: "
                + _refusal(err, "create", "serviceaccounts/token", account.namespace)
                + f" (audience {audience!r})"
            ) from None
        raise TokenRequestForbiddenError(
            f"token request for ServiceAccount {account.name!r} failed with HTTP {err.status}"
        ) from None
    status = answer.status
    expires = status.expiration_timestamp
    if isinstance(expires, datetime.datetime):
        expires_at = expires.timestamp()
    else:
        expires_at = datetime.datetime.now(datetime.UTC).timestamp() + seconds
    return IssuedToken(token=str(status.token), expires_at=expires_at)
