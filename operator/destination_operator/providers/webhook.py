"""`type: Webhook`: an HTTPS endpoint that receives deliveries, verified by one request.

A webhook keeps no object that could be written and deleted, so the probe is
a verification request, shaped after Redox's destination verification (a
POST carrying a challenge, which the receiver may echo):

    POST <spec.webhook.url>
    Content-Type: application/json
    User-Agent: destination-operator
    verification-token: <Secret key verificationToken>
    Authorization: Bearer <Secret key bearerToken>        (only when the key is set)

    {"type": "destinations.io/verification", "challenge": "<random UUID>",
     "probeKey": "<the probe's key>", "note": "..."}

The `verification-token` header is where Redox sends a destination's
verification token, on every request, so that the receiver can tell the
requests are genuine; the bearer token is for receivers behind an OAuth-style
gateway. The token goes in the header only, never in the body or the URL.

How the answer is judged (the step is `Write`; `Delete` is always `Skipped`,
since there is nothing to delete):

- 2xx: verified. The step's message says whether the receiver echoed the
  challenge (Redox requires the echo; a generic receiver need not give it).
- 401: `AuthenticationFailed` (the receiver refused the tokens, or its
  `WWW-Authenticate: Bearer` asks for a bearer token the Secret lacks).
- 403: `AccessDenied` (it knows the caller but refuses: a bearer token
  without the needed scope, an IP allow-list, a policy).
- 404 and 410: `ProbeFailed`, saying that nothing receives at this URL. Not
  `BucketNotFound`: a webhook has no bucket, and a reason naming one would
  mislead whoever reads `kubectl get dst`; the message says what to fix.
- a redirect (301, 302, 303, 307, 308): `ProbeFailed`, naming where it points
  without its query string (which may carry a signature). Redirects are not
  followed: a receiver that moved must be re-pointed, and following one would
  leave the host the endpoint guard checked.
- any other status: `ProbeFailed` with the status.

Connection failures are classified by `errors.translate` (refused or
unreachable: `EndpointUnreachable`; certificate or handshake: `TLSError`;
socket timeouts: `Timeout`). No retries; connect and read timeouts are what is
left of the probe's budget, and the probe's hard deadline is its
`ProbeControl`, which shuts the socket of a receiver that trickles its answer.

The client is urllib3 itself (it ships with the operator's Kubernetes client):
`ProbeControl` hooks urllib3's connection factory, so every connection is
bounded and pinned to the addresses the endpoint guard checked. Each probe's
transport (`providers.transport`: `spec.transport` and the Secret's
`caBundle`) can bring a CA bundle that replaces the system's trust store, a
proxy for https:// URLs, and (in Development) no certificate check at all;
the provider's own `ca_bundle` and `https_proxy` apply where it brings none.
Through a proxy, the proxy resolves the webhook's host itself, so the
guard's pinning does not reach past it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import urllib3

from destination_operator.api.spec import DestinationSpec, DestinationType, VerificationMode
from destination_operator.errors import (
    AccessDeniedError,
    AuthenticationFailedError,
    DestinationError,
    InvalidSpecError,
    ProbeFailedError,
    ProbeTimeoutError,
    SecretKeyInvalidError,
    SecretKeyMissingError,
    map_exceptions,
)
from destination_operator.expiry import Expiry, jwt_expiry
from destination_operator.outcome import StepName, StepOutcome, StepResult
from destination_operator.providers.base import ProbeResult, SecretKeys, Stopwatch, header_value
from destination_operator.providers.transport import ConnectionOptions, Transport

__all__ = [
    "EVENT_TYPE",
    "VERIFICATION_TOKEN_HEADER",
    "WEBHOOK_SECRET_KEYS",
    "WebhookCredentials",
    "WebhookProvider",
    "judge_answer",
    "redirect_target",
    "verification_event",
]

VERIFICATION_TOKEN_HEADER = "verification-token"
"""The request header that carries `verificationToken` (Redox's name for it)."""

EVENT_TYPE = "destinations.io/verification"
"""The `type` of the verification event's JSON body."""

WEBHOOK_SECRET_KEYS = SecretKeys(
    required=("verificationToken",),
    optional=("bearerToken",),
    description=(
        "verificationToken is sent in the verification-token header of every request; "
        "bearerToken, if set, as Authorization: Bearer"
    ),
)

ECHO_READ_LIMIT = 4096
"""Bytes of a 2xx answer read to look for the echoed challenge (never the whole body)."""

_MIN_TIMEOUT = 0.1
# What an HTTP header can carry safely: printable ASCII, spaces only inside.
_HEADER_VALUE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NOT_FOUND = frozenset({404, 410})
_DELETE_SKIPPED = "nothing to delete: a webhook keeps no probe object"


@dataclass(frozen=True)
class WebhookCredentials:
    """The verification token (and bearer token); `repr` shows no value."""

    verification_token: str = field(repr=False)
    bearer_token: str | None = field(default=None, repr=False)

    def values(self) -> tuple[str, ...]:
        """Every credential value, for scrubbing messages."""
        return tuple(v for v in (self.verification_token, self.bearer_token or "") if v)


def _header_value(data: Mapping[str, str], key: str) -> str | None:
    """The Secret's value for `key`, trimmed (None if blank); refuses, by key name, a value
    that a header cannot carry (`SecretKeyInvalidError`)."""
    value = header_value(data, key)
    if not value:
        return None
    if not _HEADER_VALUE.fullmatch(value):
        # Stricter than `header_value`: beyond ASCII, receivers disagree on how to decode it.
        raise SecretKeyInvalidError(key, "contains a character outside printable ASCII")
    return value


def verification_event(challenge: str, probe_key: str) -> bytes:
    """The JSON body of the verification request."""
    event = {
        "type": EVENT_TYPE,
        "challenge": challenge,
        "probeKey": probe_key,
        "note": "a verification request from destination-operator, not a delivery; "
        "answer 2xx, and echo the challenge to show the request was read",
    }
    return json.dumps(event, separators=(",", ":")).encode()


def redirect_target(url: str, location: str) -> str:
    """Where a redirect from `url` points, without user info, query string or fragment."""
    try:
        parts = urlsplit(urljoin(url, location))
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "an address that is not a valid URL"
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")) or "an empty address"


def judge_answer(
    status: int,
    reason: str,
    headers: Mapping[str, str],
    *,
    url: str,
    echoed: bool,
    bearer_sent: bool,
) -> str:
    """The step message for a 2xx answer; raises the `DestinationError` any other status means.

    `headers` are the answer's (a case-insensitive mapping): `Location` of a
    redirect, and the scheme of a 401's `WWW-Authenticate` challenge.
    """
    answered = f"the receiver answered {status} {reason}".rstrip()
    if 200 <= status < 300:
        if echoed:
            return f"{answered} and echoed the challenge"
        return f"{answered} (it did not echo the challenge)"
    if status == 401:
        scheme = (headers.get("WWW-Authenticate") or "").strip().split(" ", 1)[0].lower()
        if scheme == "bearer" and not bearer_sent:
            raise AuthenticationFailedError(
                f"{answered}: it asks for a bearer token (Secret key bearerToken)"
            )
        tokens = "verificationToken or bearerToken" if bearer_sent else "verificationToken"
        raise AuthenticationFailedError(f"{answered}: it did not accept the {tokens}")
    if status == 403:
        raise AccessDeniedError(
            f"{answered}: it recognises the request but refuses it "
            "(a token without the needed scope, or a policy of the receiver)"
        )
    if status in _NOT_FOUND:
        raise ProbeFailedError(f"{answered}: nothing receives at this URL; check spec.webhook.url")
    if status in _REDIRECTS:
        location = headers.get("Location")
        target = redirect_target(url, location) if location else "no Location given"
        raise ProbeFailedError(
            f"{answered}, a redirect to {target}; redirects are not followed: "
            "set spec.webhook.url to the receiver's address"
        )
    raise ProbeFailedError(answered)


class WebhookProvider:
    """`type: Webhook`: one verification request to `spec.webhook.url`.

    `ca_bundle`: a PEM file of the CAs to trust instead of the system's;
    `https_proxy`: the proxy to send https:// requests through. Both default
    to None (the system's CAs, a direct connection); a probe's transport
    overrides them.
    """

    type: ClassVar[DestinationType] = DestinationType.Webhook
    secret_keys: ClassVar[SecretKeys] = WEBHOOK_SECRET_KEYS

    def __init__(self, *, ca_bundle: str | None = None, https_proxy: str | None = None) -> None:
        self.options = ConnectionOptions(ca_bundle=ca_bundle, https_proxy=https_proxy)

    def load_credentials(self, data: Mapping[str, str]) -> WebhookCredentials:
        """The tokens from the Secret; surrounding whitespace (a trailing newline) is ignored."""
        token = _header_value(data, "verificationToken")
        if token is None:
            raise SecretKeyMissingError("verificationToken")
        return WebhookCredentials(
            verification_token=token, bearer_token=_header_value(data, "bearerToken")
        )

    def expiries(self, credentials: WebhookCredentials) -> list[Expiry]:
        """A bearer token's `exp`, when it is a JWT; an opaque token's expiry is unknown."""
        if not credentials.bearer_token:
            return []
        found = jwt_expiry(credentials.bearer_token, "the JWT in the Secret's bearerToken")
        return [found] if found is not None else []

    def endpoints(self, spec: DestinationSpec) -> list[str]:
        """The webhook's URL: its author chose it, so the endpoint guard checks it."""
        return [self._url(spec)]

    def probe(
        self,
        spec: DestinationSpec,
        credentials: WebhookCredentials,
        object_key: str,
        mode: VerificationMode,
        timeout_seconds: float,
        *,
        transport: Transport | None = None,
    ) -> ProbeResult:
        """POST the verification event; the `Delete` step is skipped in every mode."""
        url = self._url(spec)
        watch = Stopwatch()
        skipped = StepResult(StepName.Delete, StepOutcome.Skipped, 0, _DELETE_SKIPPED)
        connection = self.options.over(transport)
        try:
            with map_exceptions(self._secrets(credentials, connection)):
                message = self._deliver(
                    url, credentials, object_key, watch.remaining(timeout_seconds), connection
                )
        except DestinationError as err:
            failed = StepResult(StepName.Write, StepOutcome.Failed, watch.ms(), err.message)
            return ProbeResult((failed, skipped), err)
        return ProbeResult(
            (StepResult(StepName.Write, StepOutcome.Succeeded, watch.ms(), message), skipped),
            summary=f"verification request delivered: {message}",
        )

    def _url(self, spec: DestinationSpec) -> str:
        if spec.webhook is None:
            raise InvalidSpecError("type Webhook needs the webhook block")
        return spec.webhook.url

    def _secrets(
        self, credentials: WebhookCredentials, connection: ConnectionOptions
    ) -> tuple[str, ...]:
        proxy = connection.https_proxy
        proxy_password = urlsplit(proxy).password if proxy else None
        if not proxy_password:
            return credentials.values()
        return (*credentials.values(), proxy_password, unquote(proxy_password))

    def _manager(self, url: str, connection: ConnectionOptions) -> urllib3.PoolManager:
        """A pool for one probe: no retries; certificates checked unless the transport says
        not to (Development only). The proxy serves https:// URLs only."""
        cert_reqs = "CERT_REQUIRED" if connection.verify else "CERT_NONE"
        ca_certs = connection.ca_bundle if connection.verify else None
        if not connection.https_proxy or not url.lower().startswith("https://"):
            return urllib3.PoolManager(
                num_pools=1, maxsize=1, cert_reqs=cert_reqs, ca_certs=ca_certs
            )
        proxy = urlsplit(connection.https_proxy)
        headers = None
        if proxy.username:
            auth = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}"
            headers = urllib3.util.make_headers(proxy_basic_auth=auth)
        return urllib3.ProxyManager(
            connection.https_proxy,
            num_pools=1,
            maxsize=1,
            proxy_headers=headers,
            cert_reqs=cert_reqs,
            ca_certs=ca_certs,
        )

    def _deliver(
        self,
        url: str,
        credentials: WebhookCredentials,
        object_key: str,
        remaining: float,
        connection: ConnectionOptions,
    ) -> str:
        """Send the verification request; the step message, or the error its answer means."""
        if remaining <= 0:
            raise ProbeTimeoutError("the probe's time was used up before the request")
        challenge = str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "destination-operator",
            VERIFICATION_TOKEN_HEADER: credentials.verification_token,
        }
        if credentials.bearer_token:
            headers["Authorization"] = f"Bearer {credentials.bearer_token}"
        timeout = max(_MIN_TIMEOUT, remaining)
        manager = self._manager(url, connection)
        try:
            response = manager.request(
                "POST",
                url,
                body=verification_event(challenge, object_key),
                headers=headers,
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
                retries=False,
                redirect=False,
                preload_content=False,
                decode_content=False,
            )
            try:
                status = response.status
                head = response.read(ECHO_READ_LIMIT) if 200 <= status < 300 else b""
            finally:
                response.close()
        finally:
            manager.clear()
        return judge_answer(
            status,
            response.reason or "",
            response.headers,
            url=url,
            echoed=challenge.encode() in head,
            bearer_sent=credentials.bearer_token is not None,
        )
