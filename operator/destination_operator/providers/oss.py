"""Alibaba Cloud OSS (`type: AlibabaOSS`): write, then delete, a probe object with oss2.

Where the bucket is: `spec.alibabaOSS.endpoint` when set, else Alibaba's
public endpoint of the region, `https://<region id>.aliyuncs.com` (region id
`oss-cn-hangzhou`: `https://oss-cn-hangzhou.aliyuncs.com`). oss2 addresses the
bucket virtual-hosted (`<bucket>.<endpoint host>`), or path style
(`<endpoint>/<bucket>`) when the endpoint's host is an IP address or
`localhost`. An endpoint the Destination's author chose goes to the endpoint
guard (`endpoints()`), as given and, for virtual-hosted addressing, with the
bucket in front of its host (a bucket name can make a host resolve anywhere);
Alibaba's own endpoint does not.

Signing: V4 (`oss2.AuthV4`), scoped to the region id without its `oss-`
prefix (`cn-hangzhou`). Alibaba is retiring V1 (HMAC-SHA1): since March 2025
new accounts cannot use it, since September 2025 new buckets refuse it, and
V4 binds each signature to a date and a region.

Secret keys: `accessKeyId`, `accessKeySecret`.

oss2 is imported only when a probe runs; without it the probe fails with
`ProviderUnavailableError`, which names the extra:
`pip install 'destination-operator[oss]'`.

The client: oss2 speaks through requests, and so urllib3, which is what the
probe's hard deadline (`probe.control`) watches. Each probe gets an HTTP
session of its own (one connection, no retries: the operator retries with
backoff), closed when the probe ends; each step's timeout is what is left of
the probe's. The session reads nothing from the environment (proxy
variables, CA bundle variables, `.netrc`): a proxy would connect in place of
the address the guard checked, and a `.netrc` entry would replace the
signature. A CA bundle and an HTTPS proxy come from the probe's transport
(`providers.transport`: `spec.transport` and the Secret's `caBundle`), or
from the provider's own settings (`AlibabaOSSProvider(ca_bundle=...,
https_proxy=...)`) where the probe's set none.

Logging: oss2 logs each request's headers (with the Authorization header and
so the access key id) at DEBUG, and its exceptions (quoting OSS's error body,
which names the access key id) at INFO. Its logger is set to WARNING when
the provider first uses oss2, so none of that reaches a log.

OSS's error codes become `DestinationError`s here (`translate_oss_error`);
socket, TLS and timeout errors under requests go on to `errors.translate`.
"""

from __future__ import annotations

import importlib
import ipaddress
import logging
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, ClassVar
from urllib.parse import urlsplit

from destination_operator.api.backends.oss import OSSRegion
from destination_operator.api.spec import DestinationSpec, DestinationType, VerificationMode
from destination_operator.errors import (
    AccessDeniedError,
    AuthenticationFailedError,
    BucketNotFoundError,
    DestinationError,
    EndpointUnreachableError,
    InvalidSpecError,
    ProbeFailedError,
    ProbeTimeoutError,
    ProviderUnavailableError,
    SecretKeyMissingError,
    TLSError,
    translate,
)
from destination_operator.outcome import StepName, StepOutcome, StepResult
from destination_operator.providers.base import (
    PROBE_BODY,
    ProbeResult,
    SecretKeys,
    Stopwatch,
    failed_write,
    header_value,
    write_then_delete,
)
from destination_operator.providers.transport import ConnectionOptions, Transport

__all__ = [
    "OSS_SECRET_KEYS",
    "AlibabaOSSProvider",
    "ClientOptions",
    "OSSCredentials",
    "OSSTarget",
    "default_endpoint",
    "signing_region",
    "translate_oss_error",
    "use_path_style",
]

OSS_SECRET_KEYS = SecretKeys(
    required=("accessKeyId", "accessKeySecret"),
    description="an AccessKey pair of a RAM user that may put (and delete) objects in the bucket",
)

APP_NAME = "destination-operator"
"""Added to oss2's User-Agent, so that OSS access logs show who wrote the probe."""

_MIN_TIMEOUT = 0.1

_AUTH_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidSecurityToken",
        "SecurityTokenExpired",
        "RequestTimeTooSkewed",
    }
)
_DENIED_CODES = frozenset({"AccessDenied", "AccessForbidden", "UserDisable"})


@dataclass(frozen=True)
class OSSCredentials:
    """An AccessKey pair; `repr` shows no value."""

    access_key_id: str = field(repr=False)
    access_key_secret: str = field(repr=False)

    def values(self) -> tuple[str, ...]:
        """Every credential value, for scrubbing messages."""
        return (self.access_key_id, self.access_key_secret)


@dataclass(frozen=True)
class ClientOptions(ConnectionOptions):
    """How the HTTP client reaches OSS, beyond the spec: a CA bundle, an HTTPS proxy.

    `ca_bundle`: a PEM file of the CAs to trust (None: the CAs requests
    ships). `https_proxy`: a proxy URL for https:// requests (None: direct).
    `verify`: False (Development only) checks no certificate.
    """


@dataclass(frozen=True)
class OSSTarget:
    """Where an OSS probe goes."""

    bucket: str
    region: OSSRegion
    endpoint_url: str
    path_style: bool
    user_endpoint: bool  # the URL came from the Destination's author: guard it

    def connect_urls(self) -> list[str]:
        """The endpoint and, for virtual-hosted addressing, the bucket's host under it."""
        if self.path_style:
            return [self.endpoint_url]
        parts = urlsplit(self.endpoint_url)
        virtual = parts._replace(netloc=f"{self.bucket}.{parts.netloc}")
        return [self.endpoint_url, virtual.geturl()]


def default_endpoint(region: OSSRegion | str) -> str:
    """Alibaba's public endpoint of a region id: `https://oss-cn-hangzhou.aliyuncs.com`."""
    return f"https://{OSSRegion(region).value}.aliyuncs.com"


def signing_region(region: OSSRegion | str) -> str:
    """The region a V4 signature is scoped to: the region id without `oss-` (`cn-hangzhou`)."""
    return OSSRegion(region).value.removeprefix("oss-")


def use_path_style(endpoint_url: str) -> bool:
    """Path style when the endpoint's host is `localhost` or an IP address, as oss2 decides.

    oss2 treats as an IP whatever `socket.inet_aton` accepts (`127.1` too);
    this is a superset of its rule, and the provider passes the answer to
    oss2 (`is_path_style`), so both always agree on the host to connect to.
    """
    host = (urlsplit(endpoint_url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return True
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def oss_target(spec: DestinationSpec) -> OSSTarget:
    """Bucket, region, endpoint and addressing for an AlibabaOSS spec."""
    member = spec.alibaba_oss
    if member is None:
        raise InvalidSpecError("type AlibabaOSS needs the alibabaOSS block")
    region = OSSRegion(member.region)
    if member.endpoint:
        endpoint = member.endpoint.rstrip("/")
        parts = urlsplit(endpoint)
        if parts.path:
            # oss2 would drop it silently and write somewhere the author did not mean.
            raise InvalidSpecError(
                f"spec.alibabaOSS.endpoint: an OSS endpoint has no path; remove {parts.path!r}"
            )
        return OSSTarget(
            bucket=member.bucket,
            region=region,
            endpoint_url=endpoint,
            path_style=use_path_style(endpoint),
            user_endpoint=True,
        )
    return OSSTarget(
        bucket=member.bucket,
        region=region,
        endpoint_url=default_endpoint(region),
        path_style=False,
        user_endpoint=False,
    )


# --- oss2, imported on first use -------------------------------------------------------------


_quieted = threading.Event()


def _import_oss2() -> ModuleType:
    """oss2 (untyped: it ships no type information), its logger quieted; or the extra's name."""
    try:
        oss2 = importlib.import_module("oss2")
    except ImportError:
        raise ProviderUnavailableError("Alibaba Cloud OSS (oss2)", "oss") from None
    if not _quieted.is_set():  # once, whoever imported oss2 first
        # DEBUG and INFO records of oss2 carry the access key id (see the module docstring).
        logging.getLogger("oss2").setLevel(logging.WARNING)
        _quieted.set()
    return oss2


class _Client:
    """One probe's oss2 session (one pooled connection, no retries), auth and bucket maker."""

    def __init__(
        self, target: OSSTarget, credentials: OSSCredentials, options: ClientOptions
    ) -> None:
        self.oss2 = _import_oss2()
        from requests.adapters import HTTPAdapter  # oss2's transport, there when oss2 is

        self.target = target
        self.session = self.oss2.Session(
            adapter=HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
        )
        http = self.session.session  # the requests.Session underneath
        http.trust_env = False
        # oss2 lets requests follow redirects; a redirect could lead past the endpoint guard
        http.max_redirects = 0
        if not options.verify:
            http.verify = False
        elif options.ca_bundle:
            http.verify = options.ca_bundle
        # https:// only: an http:// endpoint (Development) is reached directly.
        self.proxies = {"https": options.https_proxy} if options.https_proxy else None
        self.auth = self.oss2.AuthV4(credentials.access_key_id, credentials.access_key_secret)

    def bucket(self, timeout_seconds: float) -> Any:
        """An oss2 Bucket whose requests time out after `timeout_seconds` (connect and read)."""
        return self.oss2.Bucket(
            self.auth,
            self.target.endpoint_url,
            self.target.bucket,
            session=self.session,
            connect_timeout=max(_MIN_TIMEOUT, timeout_seconds),
            app_name=APP_NAME,
            enable_crc=True,
            proxies=self.proxies,
            region=signing_region(self.target.region),
            is_path_style=self.target.path_style,
        )

    def close(self) -> None:
        self.session.session.close()


# --- errors ----------------------------------------------------------------------------------


def _service_error(exc: Any, operation: str) -> tuple[type[DestinationError], str]:
    """OSS answered with an error: its code decides (never its whole body, which names the key)."""
    details = getattr(exc, "details", None) or {}
    code = str(getattr(exc, "code", "") or "")
    status = getattr(exc, "status", None)
    text = str(getattr(exc, "message", "") or "")
    request_id = str(getattr(exc, "request_id", "") or "")
    detail = f"{operation}: {code or status}" + (f" ({text})" if text and text != code else "")
    if request_id:
        detail += f" [request id {request_id}]"
    if code in _AUTH_CODES:
        if code == "RequestTimeTooSkewed":
            detail += "; check the operator's clock"
        return AuthenticationFailedError, detail
    if code == "AccessDenied" and details.get("Endpoint"):
        # The bucket exists in another region: OSS names the endpoint to use.
        return InvalidSpecError, (
            f"{operation}: AccessDenied: the bucket is in another region, OSS says to use "
            f"endpoint {details['Endpoint']}; spec.alibabaOSS.region must be the bucket's region"
        )
    if code in _DENIED_CODES or (not code and status == 403):
        return AccessDeniedError, detail
    if code == "NoSuchBucket":
        return BucketNotFoundError, detail
    if code == "InvalidArgument" and "signing region" in text:
        return InvalidSpecError, (
            f"{detail}; spec.alibabaOSS.region does not match the region of the endpoint"
        )
    if code == "RequestTimeout":
        return ProbeTimeoutError, detail
    return ProbeFailedError, detail


def _transport_error(
    exc: BaseException, operation: str, secrets: tuple[str, ...]
) -> DestinationError:
    """requests could not complete the exchange: socket, TLS and timeout errors in its chain."""
    found = translate(exc, secrets=secrets)
    kind: type[DestinationError] = type(found)
    if kind is ProbeFailedError:
        errors = sys.modules.get("requests.exceptions")
        if errors is not None and isinstance(exc, errors.SSLError):
            kind = TLSError
        elif errors is not None and isinstance(exc, errors.Timeout):
            kind = ProbeTimeoutError
        elif errors is not None and isinstance(exc, errors.ConnectionError):
            kind = EndpointUnreachableError
    return kind(f"{operation}: {found.message}", secrets=secrets)


def translate_oss_error(
    exc: BaseException, operation: str, secrets: tuple[str, ...] = ()
) -> DestinationError:
    """The `DestinationError` for what oss2 raised during `operation` (PutObject, DeleteObject)."""
    if isinstance(exc, DestinationError):
        return translate(exc, secrets=secrets)
    errors = sys.modules.get("oss2.exceptions")
    if errors is not None:
        if isinstance(exc, errors.ServerError):
            kind, detail = _service_error(exc, operation)
            return kind(detail, secrets=secrets)
        if isinstance(exc, errors.RequestError):
            return _transport_error(exc.exception, operation, secrets)
        if isinstance(exc, errors.InconsistentError):
            return ProbeFailedError(
                f"{operation}: OSS's CRC-64 of the probe object differs from the one sent",
                secrets=secrets,
            )
        if isinstance(exc, errors.OssError):  # ClientError and the like: no request was sent
            return ProbeFailedError(f"{operation}: {exc.body}", secrets=secrets)
    return translate(exc, secrets=secrets)


# --- the provider ----------------------------------------------------------------------------


class AlibabaOSSProvider:
    """`type: AlibabaOSS`."""

    type: ClassVar[DestinationType] = DestinationType.AlibabaOSS
    secret_keys: ClassVar[SecretKeys] = OSS_SECRET_KEYS

    def __init__(self, *, ca_bundle: str | None = None, https_proxy: str | None = None) -> None:
        """`ca_bundle` and `https_proxy`: see `ClientOptions` (a probe's transport wins)."""
        self.options = ClientOptions(ca_bundle=ca_bundle, https_proxy=https_proxy)

    def load_credentials(self, data: Mapping[str, str]) -> OSSCredentials:
        """The key pair from the Secret; surrounding whitespace (a trailing newline) is ignored,
        a line break or control character inside is refused."""
        values = {key: header_value(data, key) for key in OSS_SECRET_KEYS.required}
        for key, value in values.items():
            if not value:
                raise SecretKeyMissingError(key)
        return OSSCredentials(
            access_key_id=values["accessKeyId"], access_key_secret=values["accessKeySecret"]
        )

    def endpoints(self, spec: DestinationSpec) -> list[str]:
        """The URLs the probe connects to when the Destination's author chose the endpoint."""
        target = oss_target(spec)
        return target.connect_urls() if target.user_endpoint else []

    def probe(
        self,
        spec: DestinationSpec,
        credentials: OSSCredentials,
        object_key: str,
        mode: VerificationMode,
        timeout_seconds: float,
        *,
        transport: Transport | None = None,
    ) -> ProbeResult:
        """PUT a small object at `object_key`; in `WriteDelete` mode DELETE it again."""
        secrets = credentials.values()
        watch = Stopwatch()
        try:
            client = _Client(oss_target(spec), credentials, self.options.over(transport))
        except Exception as exc:  # noqa: BLE001 - the SDK missing, or a bad spec: a failed write
            error = translate_oss_error(exc, "PutObject", secrets)
            return failed_write(error, watch)
        try:
            return self._steps(client, object_key, mode, timeout_seconds, watch, secrets)
        finally:
            client.close()

    def _steps(
        self,
        client: _Client,
        object_key: str,
        mode: VerificationMode,
        timeout_seconds: float,
        watch: Stopwatch,
        secrets: tuple[str, ...],
    ) -> ProbeResult:
        def run(
            name: StepName, operation: str, call: Callable[[Any], object]
        ) -> StepResult | DestinationError:
            step = Stopwatch()
            remaining = watch.remaining(timeout_seconds)
            if remaining <= 0:
                return ProbeTimeoutError(
                    f"the probe's {timeout_seconds:g}s were used up before {name.value}"
                )
            try:
                call(client.bucket(remaining))
            except Exception as exc:  # noqa: BLE001 - every SDK failure is a failed step
                return translate_oss_error(exc, operation, secrets)
            return StepResult(name, StepOutcome.Succeeded, step.ms())

        return write_then_delete(
            lambda: run(
                StepName.Write,
                "PutObject",
                lambda bucket: bucket.put_object(
                    object_key,
                    PROBE_BODY,
                    headers={
                        "Content-Type": "text/plain",
                        "x-oss-meta-purpose": "destination-operator-probe",
                    },
                ),
            ),
            lambda: run(
                StepName.Delete, "DeleteObject", lambda bucket: bucket.delete_object(object_key)
            ),
            mode,
            watch,
        )
