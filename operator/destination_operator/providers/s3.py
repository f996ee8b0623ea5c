"""Backends that speak the S3 API: S3-compatible services, Amazon S3, Oracle Cloud.

One prober (`S3ApiProvider`) serves every S3-API backend; each backend only
says where its bucket is (`target()`): S3-compatible takes the endpoint from
the spec (and so has it checked by the endpoint guard), Amazon S3 lets the SDK
derive AWS's endpoint from the region (and sends the spec's server-side
encryption header), Oracle Cloud derives
`https://<namespace>.compat.objectstorage.<region>.oraclecloud.com` and uses
path-style addressing.

Secret keys: `accessKeyId`, `secretAccessKey`, optional `sessionToken`.

boto3 is imported only when a probe runs; without it the probe fails with
`ProviderUnavailableError`, which names the extra:
`pip install 'destination-operator[s3]'`.

The client fails fast (one attempt: the operator retries with backoff),
bounds connect and read by what is left of the probe's timeout, and computes
checksums only when an operation requires them (boto3 1.36 and later would
otherwise send CRC headers that S3-compatible services reject). Those
timeouts are per socket operation: a server that trickles its answer never
trips them. The probe's hard deadline is the `ProbeControl` it runs under
(`probe.verify.verify` sees to it), which shuts the client's sockets when the
time is up; see `probe.control`.

`endpoint_override` (a constructor argument, so no Destination can set it)
sends a provider's requests to another endpoint, which the endpoint guard
then checks: the tests point Amazon S3 and Oracle Cloud at an S3 server on
loopback with it. `S3Transport` is what the client trusts and how it
connects: a CA bundle, a proxy for https:// endpoints, TLS verification. A
provider has one of its own (constructor); each probe's `Transport` (from
`spec.transport` and the Secret's `caBundle`, see `providers.transport`)
overrides it where it sets something.
"""

from __future__ import annotations

import ipaddress
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar
from urllib.parse import urlsplit

from destination_operator.api.spec import DestinationSpec, DestinationType, VerificationMode
from destination_operator.errors import (
    DestinationError,
    InvalidSpecError,
    ProbeTimeoutError,
    ProviderUnavailableError,
    SecretKeyMissingError,
    map_exceptions,
)
from destination_operator.outcome import StepName, StepOutcome, StepResult
from destination_operator.providers.base import (
    PROBE_BODY,
    ProbeResult,
    SecretKeys,
    Stopwatch,
    header_value,
    write_then_delete,
)
from destination_operator.providers.issued import AwsSession, Issued
from destination_operator.providers.s3errors import classify_botocore
from destination_operator.providers.transport import ConnectionOptions, Transport

__all__ = [
    "DEFAULT_REGION",
    "AmazonS3Provider",
    "OracleCloudStorageProvider",
    "S3ApiProvider",
    "S3CompatibleProvider",
    "S3Credentials",
    "S3Target",
    "S3Transport",
    "client_config",
    "use_path_style",
]

DEFAULT_REGION = "us-east-1"
"""The signing region when an S3-compatible Destination names none."""

S3_SECRET_KEYS = SecretKeys(
    required=("accessKeyId", "secretAccessKey"),
    optional=("sessionToken",),
    description="an access key pair; sessionToken only for temporary (STS) credentials",
)

_REGION = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_MIN_TIMEOUT = 0.1


@dataclass(frozen=True)
class S3Credentials:
    """An access key pair (and session token); `repr` shows no value."""

    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    def values(self) -> tuple[str, ...]:
        """Every credential value, for scrubbing messages."""
        items = (self.access_key_id, self.secret_access_key, self.session_token or "")
        return tuple(v for v in items if v)


@dataclass(frozen=True)
class S3Target:
    """Where an S3-API probe goes."""

    bucket: str
    region: str
    endpoint_url: str | None  # None: the SDK derives AWS's endpoint from the region
    path_style: bool
    user_endpoint: bool  # the URL came from the Destination's author: guard it
    put_arguments: tuple[tuple[str, str], ...] = ()  # extra PutObject arguments (encryption)

    def connect_urls(self) -> list[str]:
        """The URLs the client connects to: the endpoint, and for virtual-hosted
        addressing the endpoint with the bucket in front of its host (a bucket
        name can make a host resolve anywhere, so that one is guarded too)."""
        if not self.endpoint_url:
            return []
        if self.path_style:
            return [self.endpoint_url]
        parts = urlsplit(self.endpoint_url)
        virtual = parts._replace(netloc=f"{self.bucket}.{parts.netloc.rsplit('@', 1)[-1]}")
        return [self.endpoint_url, virtual.geturl()]


@dataclass(frozen=True)
class S3Transport(ConnectionOptions):
    """How the client reaches any endpoint: a CA bundle to trust, an HTTPS proxy, verification.

    None means the SDK's default: the system's trusted CAs, and no proxy.
    `verify=False` (Development only) checks no certificate at all.
    """

    def botocore_verify(self) -> str | bool | None:
        """botocore's `verify`: False, a CA bundle's path, or None (the SDK's default trust)."""
        return False if not self.verify else self.ca_bundle


def use_path_style(endpoint_url: str | None, force_path_style: bool) -> bool:
    """Path-style addressing when asked, or when the endpoint's host is an IP or `localhost`.

    Virtual-hosted style puts the bucket in the host name, which an IP
    address or `localhost` cannot carry.
    """
    if force_path_style:
        return True
    if not endpoint_url:
        return False
    host = (urlsplit(endpoint_url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def client_config(
    timeout_seconds: float,
    *,
    path_style: bool,
    https_proxy: str | None = None,
    proxy_ca_bundle: str | None = None,
) -> dict[str, Any]:
    """The keyword arguments of `botocore.config.Config` for a probe client.

    `proxy_ca_bundle`: the CAs that an https:// proxy's certificate is checked
    against (the client's CA bundle, so that one bundle serves both).
    """
    timeout = max(_MIN_TIMEOUT, timeout_seconds)
    config: dict[str, Any] = {
        "connect_timeout": timeout,
        "read_timeout": timeout,
        # One attempt in total: fail fast, the operator retries with backoff.
        "retries": {"total_max_attempts": 1, "mode": "standard"},
        # Never "auto": the guard must know which host the client will connect to.
        "s3": {"addressing_style": "path" if path_style else "virtual"},
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
        "user_agent_extra": "destination-operator",
    }
    if https_proxy:
        config["proxies"] = {"https": https_proxy}
        if proxy_ca_bundle and https_proxy.startswith("https://"):
            config["proxies_config"] = {"proxy_ca_bundle": proxy_ca_bundle}
    return config


CLIENTS_KEPT = 256
"""boto3 clients kept for reuse: making one costs milliseconds of CPU, under a lock."""


def client_timeout(remaining_seconds: float) -> float:
    """The timeout a probe step's client gets: what is left, rounded down to whole seconds.

    Never more than is left, so the probe's bound holds; whole seconds, so the
    next probe with the same endpoint and credentials can reuse the client.
    """
    return float(math.floor(remaining_seconds)) if remaining_seconds >= 1 else remaining_seconds


class _Sdk:
    """boto3, imported on first use; one shared session and a small cache of clients.

    boto3 sessions are not thread-safe, so clients are made under a lock;
    clients are, and are shared. A client is keyed by everything it was made
    with: endpoint, region, addressing, transport, credentials and timeout.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._session: Any = None
        self._config: Any = None
        self._clients: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    def client(
        self,
        target: S3Target,
        credentials: S3Credentials,
        timeout_seconds: float,
        transport: S3Transport | None = None,
    ) -> Any:
        timeout = client_timeout(timeout_seconds)
        transport = transport or S3Transport()
        key = (
            target.endpoint_url,
            target.region,
            target.path_style,
            transport,
            credentials,
            timeout,
        )
        with self._lock:
            cached = self._clients.get(key)
            if cached is not None:
                self._clients.move_to_end(key)
                return cached
            if self._session is None:
                try:
                    import boto3
                    from botocore.config import Config
                except ImportError:
                    raise ProviderUnavailableError("AWS (boto3)", "s3") from None
                self._session, self._config = boto3.session.Session(), Config
            config = self._config(
                **client_config(
                    timeout,
                    path_style=target.path_style,
                    https_proxy=transport.https_proxy,
                    proxy_ca_bundle=transport.ca_bundle if transport.verify else None,
                )
            )
            made = self._session.client(
                "s3",
                endpoint_url=target.endpoint_url,
                region_name=target.region,
                aws_access_key_id=credentials.access_key_id,
                aws_secret_access_key=credentials.secret_access_key,
                aws_session_token=credentials.session_token,
                verify=transport.botocore_verify(),
                config=config,
            )
            self._clients[key] = made
            if len(self._clients) > CLIENTS_KEPT:
                self._clients.popitem(last=False)
            return made


_sdk = _Sdk()


class S3ApiProvider:
    """The S3-API prober; subclasses say where the bucket is (`target`).

    `endpoint_override` replaces the endpoint the spec implies (for tests: a
    server on loopback); the endpoint guard checks it like a user's endpoint.
    `transport` is the client's CA bundle and proxy, under each probe's own.
    """

    type: ClassVar[DestinationType]
    secret_keys: ClassVar[SecretKeys] = S3_SECRET_KEYS

    def __init__(
        self, *, endpoint_override: str | None = None, transport: S3Transport | None = None
    ) -> None:
        self.endpoint_override = endpoint_override.rstrip("/") if endpoint_override else None
        self.transport = transport or S3Transport()

    def target(self, spec: DestinationSpec) -> S3Target:
        """Bucket, region, endpoint and addressing for `spec`."""
        raise NotImplementedError

    def connect_target(self, spec: DestinationSpec) -> S3Target:
        """`target(spec)`, sent to `endpoint_override` when there is one (and then guarded)."""
        target = self.target(spec)
        override = self.endpoint_override
        if override is None:
            return target
        return replace(
            target,
            endpoint_url=override,
            path_style=target.path_style or use_path_style(override, False),
            user_endpoint=True,
        )

    def load_credentials(self, data: Mapping[str, str]) -> S3Credentials:
        """The key pair (and session token) from the Secret; surrounding whitespace (a
        trailing newline) is ignored, a line break or control character inside is refused."""
        values = {key: header_value(data, key) for key in S3_SECRET_KEYS.required}
        for key, value in values.items():
            if not value:
                raise SecretKeyMissingError(key)
        return S3Credentials(
            access_key_id=values["accessKeyId"],
            secret_access_key=values["secretAccessKey"],
            session_token=header_value(data, "sessionToken") or None,
        )

    def endpoints(self, spec: DestinationSpec) -> list[str]:
        """The URLs the probe connects to when the author (or an override) chose the endpoint."""
        target = self.connect_target(spec)
        return target.connect_urls() if target.user_endpoint else []

    def probe(
        self,
        spec: DestinationSpec,
        credentials: S3Credentials,
        object_key: str,
        mode: VerificationMode,
        timeout_seconds: float,
        *,
        transport: Transport | None = None,
    ) -> ProbeResult:
        """PUT a small object at `object_key`; in `WriteDelete` mode DELETE it again."""
        target = self.connect_target(spec)
        secrets = credentials.values()
        connection = self.transport.over(transport)
        watch = Stopwatch()

        def run(name: StepName, call: Callable[[Any], object]) -> StepResult | DestinationError:
            step = Stopwatch()
            try:
                with map_exceptions(secrets, classify=classify_botocore):
                    remaining = watch.remaining(timeout_seconds)
                    if remaining <= 0:
                        raise ProbeTimeoutError(
                            f"the probe's {timeout_seconds:g}s were used up before {name.value}"
                        )
                    call(_sdk.client(target, credentials, remaining, connection))
            except DestinationError as err:
                return err
            return StepResult(name, StepOutcome.Succeeded, step.ms())

        return write_then_delete(
            lambda: run(
                StepName.Write,
                lambda s3: s3.put_object(
                    Bucket=target.bucket,
                    Key=object_key,
                    Body=PROBE_BODY,
                    ContentType="text/plain",
                    Metadata={"purpose": "destination-operator-probe"},
                    **dict(target.put_arguments),
                ),
            ),
            lambda: run(
                StepName.Delete,
                lambda s3: s3.delete_object(Bucket=target.bucket, Key=object_key),
            ),
            mode,
            watch,
        )


def _region(value: str | None, *, default: str | None) -> str:
    region = (value or "").strip() or default
    if not region or not _REGION.match(region):
        raise InvalidSpecError(f"region {value!r} is not a valid region name")
    return region


class S3CompatibleProvider(S3ApiProvider):
    """`type: S3Compatible`: any service that speaks the S3 API at the spec's endpoint."""

    type = DestinationType.S3Compatible

    def target(self, spec: DestinationSpec) -> S3Target:
        member = spec.s3_compatible
        if member is None:
            raise InvalidSpecError("type S3Compatible needs the s3Compatible block")
        endpoint = str(member.endpoint).rstrip("/")
        return S3Target(
            bucket=member.bucket,
            region=_region(member.region, default=DEFAULT_REGION),
            endpoint_url=endpoint,
            path_style=use_path_style(endpoint, bool(member.force_path_style)),
            user_endpoint=True,
        )


class AmazonS3Provider(S3ApiProvider):
    """`type: AmazonS3`: the SDK derives AWS's endpoint (and partition) from the region."""

    type = DestinationType.AmazonS3

    def target(self, spec: DestinationSpec) -> S3Target:
        member = spec.amazon_s3
        if member is None:
            raise InvalidSpecError("type AmazonS3 needs the amazonS3 block")
        encryption = member.server_side_encryption
        return S3Target(
            bucket=member.bucket,
            region=_region(member.region, default=None),
            endpoint_url=None,
            path_style=False,
            user_endpoint=False,
            put_arguments=(("ServerSideEncryption", str(encryption)),) if encryption else (),
        )

    def load_identity(self, issued: Issued) -> S3Credentials:
        """STS's temporary credentials, signed with as a Secret's session keys would be."""
        if not isinstance(issued, AwsSession):
            raise InvalidSpecError("AmazonS3 takes AWS credentials; the identity gave another kind")
        return S3Credentials(
            access_key_id=issued.access_key_id,
            secret_access_key=issued.secret_access_key,
            session_token=issued.session_token,
        )


class OracleCloudStorageProvider(S3ApiProvider):
    """`type: OracleCloudStorage`: OCI's S3-compatibility API, path-style, Customer Secret Keys.

    The endpoint is `https://<namespace>.compat.objectstorage.<region>.oraclecloud.com`,
    derived from the spec (always under oraclecloud.com, so not guarded).
    """

    type = DestinationType.OracleCloudStorage

    def target(self, spec: DestinationSpec) -> S3Target:
        member = spec.oracle_cloud_storage
        if member is None:
            raise InvalidSpecError("type OracleCloudStorage needs the oracleCloudStorage block")
        if not _REGION.match(member.namespace):
            raise InvalidSpecError("spec.oracleCloudStorage.namespace must be a DNS label")
        region = _region(member.region, default=None)
        return S3Target(
            bucket=member.bucket,
            region=region,
            endpoint_url=f"https://{member.namespace}.compat.objectstorage.{region}.oraclecloud.com",
            path_style=True,
            user_endpoint=False,
        )
