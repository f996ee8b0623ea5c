"""Errors of a Destination's verification, each carrying the condition reason it reports.

The tree (class, then the `Reason` it sets on `Verified=False`)::

    DestinationError                 ProbeFailed           base; `.reason`, `.message`
    ├── InvalidSpecError             InvalidSpec           the spec breaks a rule (won't fix itself)
    ├── SecretNotFoundError          SecretNotFound        the referenced Secret does not exist
    ├── SecretForbiddenError         SecretForbidden       RBAC does not let the operator read it
    ├── SecretKeyMissingError        SecretKeyMissing      `.key` names the key, never a value
    ├── SecretKeyInvalidError        SecretKeyInvalid      a line break or control character inside
    ├── EndpointBlockedError         EndpointBlocked       the endpoint guard refused the address
    ├── AuthenticationFailedError    AuthenticationFailed  unknown key id, bad signature, expired
    │   └── CredentialsExpiredError  AuthenticationFailed  expired by their own text: none sent
    ├── AccessDeniedError            AccessDenied          authenticated, but the policy refuses
    ├── BucketNotFoundError          BucketNotFound        no such bucket (or container)
    ├── EndpointUnreachableError     EndpointUnreachable   no DNS answer, refused or dropped
    ├── TLSError                     TLSError              handshake or certificate check failed
    ├── ProbeTimeoutError            Timeout               no answer within the probe's timeout
    ├── IdentityNotAllowedError      IdentityNotAllowed    the operator's settings refuse it
    ├── IdentityNotConfiguredError   IdentityNotConfigured no annotation naming the cloud identity
    ├── ServiceAccountNotFoundError  ServiceAccountNotFound  no such ServiceAccount
    ├── TokenRequestForbiddenError   TokenRequestForbidden the operator may not request its token
    ├── IdentityExchangeFailedError  IdentityExchangeFailed  the cloud's token service refused
    └── ProbeFailedError             ProbeFailed           anything else the provider reported
        └── ProviderUnavailableError ProviderUnavailable   no provider, or its SDK is not installed

Lower layers (SDKs, sockets, ssl) raise their own exceptions; they become
these in exactly one place, `translate()` (or the `map_exceptions()` context
manager around it). Every message is scrubbed when the error is built
(`redaction.scrub`): each credential value handed in is removed in every form
an error text can carry it, so is anything shaped like a signature, an
Authorization header or a token, and the result is one short line, fit for a
condition message, an Event and a log line.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import ClassVar

from destination_operator.api.status import Reason
from destination_operator.redaction import scrub

__all__ = [
    "AccessDeniedError",
    "AuthenticationFailedError",
    "BucketNotFoundError",
    "Classifier",
    "DestinationError",
    "EndpointBlockedError",
    "EndpointUnreachableError",
    "IdentityExchangeFailedError",
    "IdentityNotAllowedError",
    "IdentityNotConfiguredError",
    "InvalidSpecError",
    "ProbeFailedError",
    "ProbeTimeoutError",
    "ProviderUnavailableError",
    "SecretForbiddenError",
    "SecretKeyInvalidError",
    "SecretKeyMissingError",
    "SecretNotFoundError",
    "ServiceAccountNotFoundError",
    "TLSError",
    "TokenRequestForbiddenError",
    "map_exceptions",
    "translate",
]


class DestinationError(Exception):
    """Base of the tree: a verification failed for `reason`, explained by `message`."""

    reason: ClassVar[Reason] = Reason.ProbeFailed

    def __init__(self, message: str, *, secrets: Iterable[str | bytes] = ()) -> None:
        self.message = scrub(message, secrets) or self.reason.value
        super().__init__(self.message)

    def add_detail(self, detail: str) -> DestinationError:
        """Append `detail` to the message (scrubbed and shortened again); returns `self`."""
        self.message = scrub(f"{self.message}; {detail}")
        self.args = (self.message,)
        return self


class InvalidSpecError(DestinationError):
    """The spec breaks a rule; only an edit of the Destination fixes it."""

    reason = Reason.InvalidSpec


class SecretNotFoundError(DestinationError):
    """The Secret named by `spec.credentials.secretRef.name` does not exist."""

    reason = Reason.SecretNotFound


class IdentityNotAllowedError(DestinationError):
    """The operator's settings refuse the identity the Destination asks for."""

    reason = Reason.IdentityNotAllowed


class IdentityNotConfiguredError(DestinationError):
    """The ServiceAccount (or the operator) lacks what the cloud needs, such as an annotation."""

    reason = Reason.IdentityNotConfigured


class ServiceAccountNotFoundError(DestinationError):
    """The ServiceAccount named by `spec.credentials.serviceAccountName` does not exist."""

    reason = Reason.ServiceAccountNotFound


class TokenRequestForbiddenError(DestinationError):
    """The API server refused the operator's read of the ServiceAccount or its TokenRequest."""

    reason = Reason.TokenRequestForbidden


class IdentityExchangeFailedError(DestinationError):
    """The cloud's token service refused the token, or could not be reached."""

    reason = Reason.IdentityExchangeFailed


class SecretForbiddenError(DestinationError):
    """The API server refused the operator's read of the Secret (RBAC; the message says what)."""

    reason = Reason.SecretForbidden


class SecretKeyMissingError(DestinationError):
    """A required key is absent from the Secret (or empty). Names the key, never a value."""

    reason = Reason.SecretKeyMissing

    def __init__(
        self,
        key: str,
        *,
        secret_name: str | None = None,
        hint: str = "",
        alternatives: Sequence[str] = (),
    ) -> None:
        """`alternatives`: the provider needs one of these (Azure: accountKey, sasToken or
        connectionString); `key` is then the first of them."""
        self.key = key
        self.hint = hint
        self.alternatives = tuple(alternatives)
        where = f"Secret {secret_name!r}" if secret_name else "the Secret"
        if len(self.alternatives) > 1:
            names = ", ".join(self.alternatives[:-1]) + f" or {self.alternatives[-1]}"
            message = f"{where} has none of the keys {names}"
        else:
            message = f"{where} has no key {key!r}"
        super().__init__(f"{message}; {hint}" if hint else message)


class SecretKeyInvalidError(DestinationError):
    """A key's value cannot be sent as it is: a line break or a control character inside it.

    In an HTTP header such a value ends the header, or folds a line of its own
    into the request. `.key` and `.problem` name the key and what is wrong
    ("contains a line break"), never the value nor where in it.
    """

    reason = Reason.SecretKeyInvalid

    def __init__(self, key: str, problem: str, *, secret_name: str | None = None) -> None:
        self.key = key
        self.problem = problem
        where = f"Secret {secret_name!r}" if secret_name else "the Secret"
        super().__init__(f"{where}: the value of key {key!r} {problem}")


class EndpointBlockedError(DestinationError):
    """The endpoint guard refused the address (metadata, link-local, or not allowed private)."""

    reason = Reason.EndpointBlocked


class AuthenticationFailedError(DestinationError):
    """The storage service did not accept the credentials."""

    reason = Reason.AuthenticationFailed


class CredentialsExpiredError(AuthenticationFailedError):
    """The credentials' own text says they have expired (`expiry`): the probe stops before
    any connection, and only a new Secret can help."""


class AccessDeniedError(DestinationError):
    """The credentials are valid, but their policy refuses the operation."""

    reason = Reason.AccessDenied


class BucketNotFoundError(DestinationError):
    """The bucket (or container) does not exist."""

    reason = Reason.BucketNotFound


class EndpointUnreachableError(DestinationError):
    """The endpoint could not be reached: name resolution, refused or dropped connection."""

    reason = Reason.EndpointUnreachable


class TLSError(DestinationError):
    """The TLS handshake or the certificate verification failed."""

    reason = Reason.TLSError


class ProbeTimeoutError(DestinationError):
    """The endpoint did not answer within the probe's timeout."""

    reason = Reason.Timeout


class ProbeFailedError(DestinationError):
    """Any other failure the provider reported."""

    reason = Reason.ProbeFailed


class ProviderUnavailableError(ProbeFailedError):
    """The SDK a provider needs is not installed; the message names the extra.

    Its own reason: it is Stalled, as retrying cannot help until the operator
    is rebuilt (see `decide.after_probe`).
    """

    reason = Reason.ProviderUnavailable

    def __init__(self, sdk: str, extra: str) -> None:
        self.sdk = sdk
        self.extra = extra
        super().__init__(
            f"the {sdk} SDK is not installed: pip install 'destination-operator[{extra}]'"
        )


# --- translation of lower-layer exceptions: the one place --------------------------------------

_UNREACHABLE_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.EHOSTDOWN,
        errno.ENETDOWN,
        errno.EPIPE,
    }
)


def _stdlib(exc: BaseException) -> tuple[type[DestinationError], str] | None:
    # Order matters: SSLError and timeouts are OSErrors too.
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return TLSError, str(exc)
    if isinstance(exc, TimeoutError | socket.timeout):
        return ProbeTimeoutError, str(exc) or "timed out"
    if isinstance(exc, socket.gaierror):
        return EndpointUnreachableError, f"cannot resolve the endpoint's host: {exc}"
    if isinstance(exc, ConnectionError):
        return EndpointUnreachableError, str(exc)
    if isinstance(exc, OSError) and exc.errno in _UNREACHABLE_ERRNOS:
        return EndpointUnreachableError, str(exc)
    return None


def _by_text(exc: BaseException) -> tuple[type[DestinationError], str] | None:
    text = str(exc)
    lower = text.lower()
    if "certificate verify failed" in lower or "ssl:" in lower or "tlsv1" in lower:
        return TLSError, text
    if "timed out" in lower or "timeout" in lower:
        return ProbeTimeoutError, text
    if "connection refused" in lower or "name or service not known" in lower:
        return EndpointUnreachableError, text
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then its causes and contexts (what a wrapper wrapped), at most 8 deep."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 8:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


Classifier = Callable[[BaseException], tuple[type[DestinationError], str] | None]
"""A provider's reading of its SDK's exceptions: the error class and its message, or None."""


def translate(
    exc: BaseException,
    *,
    secrets: Iterable[str | bytes] = (),
    classify: Classifier | None = None,
) -> DestinationError:
    """The `DestinationError` for a lower-layer exception, its message scrubbed of `secrets`.

    The provider's `classify` reads its SDK's errors first (each backend owns
    that knowledge: `providers.s3errors` for botocore), then socket and ssl
    errors anywhere in the exception's chain, then tell-tale words; anything
    else is `ProbeFailedError`.
    """
    secrets = tuple(secrets)
    if isinstance(exc, DestinationError):
        # Already ours: scrub once more with what this caller knows.
        exc.message = scrub(exc.message, secrets)
        exc.args = (exc.message,)
        return exc
    for classifier in (classify, _stdlib):
        if classifier is None:
            continue
        for link in _chain(exc):
            found = classifier(link)
            if found is not None:
                kind, message = found
                return kind(message or type(link).__name__, secrets=secrets)
    found = _by_text(exc)
    if found is not None:
        kind, message = found
        return kind(message, secrets=secrets)
    return ProbeFailedError(f"{type(exc).__name__}: {exc}", secrets=secrets)


@contextmanager
def map_exceptions(
    secrets: Iterable[str | bytes] = (), classify: Classifier | None = None
) -> Iterator[None]:
    """Re-raise any exception from the block as the `DestinationError` `translate()` picks."""
    secrets = tuple(secrets)
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - translating every exception is the point
        # `from None`: the SDK's exception (and its unscrubbed text) stays out of tracebacks.
        raise translate(exc, secrets=secrets, classify=classify) from None
