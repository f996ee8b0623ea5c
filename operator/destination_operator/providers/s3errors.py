"""How botocore's exceptions read as reasons: the S3-API backends' share of `errors.translate`.

S3 error codes (and those of services that copy them: GCS's interoperability
API, Oracle's compatibility API, MinIO, Ceph) name the cause precisely; the
connection errors botocore wraps are recognised before `errors` looks at the
socket and ssl errors beneath them.
"""

from __future__ import annotations

import sys
from typing import Any

from destination_operator.errors import (
    AccessDeniedError,
    AuthenticationFailedError,
    BucketNotFoundError,
    DestinationError,
    EndpointUnreachableError,
    InvalidSpecError,
    ProbeFailedError,
    ProbeTimeoutError,
    TLSError,
)

__all__ = ["classify_botocore"]

_AUTH_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidToken",
        "ExpiredToken",
        "TokenRefreshRequired",
        "AuthFailure",
        "AuthenticationFailed",
        "InvalidSecurity",
        "NotAuthenticated",
        "InvalidAuthenticationInfo",
    }
)
_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AllAccessDisabled",
        "AccountProblem",
        "AuthorizationFailure",
        "AuthorizationPermissionMismatch",
        "Forbidden",
        "403",
    }
)
_BUCKET_CODES = frozenset({"NoSuchBucket", "BucketNotFound", "ContainerNotFound"})
_TIMEOUT_CODES = frozenset({"RequestTimeout"})


def _client_error(exc: Any) -> tuple[type[DestinationError], str]:
    """botocore's ClientError: the service answered with an error code."""
    response = getattr(exc, "response", None) or {}
    error = response.get("Error") or {}
    code = str(error.get("Code") or "")
    text = str(error.get("Message") or "")
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    operation = getattr(exc, "operation_name", "") or "request"
    detail = f"{operation}: {code or status}" + (f" ({text})" if text and text != code else "")
    if code in _AUTH_CODES:
        return AuthenticationFailedError, detail
    if code in _DENIED_CODES:
        return AccessDeniedError, detail
    if code in _BUCKET_CODES:
        return BucketNotFoundError, detail
    if code in _TIMEOUT_CODES:
        return ProbeTimeoutError, detail
    if not code and status == 403:
        return AccessDeniedError, detail
    return ProbeFailedError, detail


def classify_botocore(exc: BaseException) -> tuple[type[DestinationError], str] | None:
    # Only look when botocore is already loaded: an SDK error implies it is.
    module = sys.modules.get("botocore.exceptions")
    if module is None:
        return None
    if isinstance(exc, module.ClientError):
        return _client_error(exc)
    if isinstance(exc, module.ConnectTimeoutError | module.ReadTimeoutError):
        return ProbeTimeoutError, str(exc)
    if isinstance(exc, module.SSLError):
        return TLSError, str(exc)
    if isinstance(
        exc,
        module.EndpointConnectionError | module.ConnectionClosedError | module.ProxyConnectionError,
    ):
        return EndpointUnreachableError, str(exc)
    if isinstance(exc, module.NoCredentialsError | module.PartialCredentialsError):
        return AuthenticationFailedError, str(exc)
    if isinstance(exc, module.ParamValidationError | module.InvalidRegionError):
        return InvalidSpecError, str(exc)
    return None
