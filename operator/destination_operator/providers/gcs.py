"""`type: GoogleCloudStorage`: a bucket in Google Cloud Storage, with either kind of key.

The Secret holds one of two credential forms (a Secret with both uses the
service account):

- `serviceAccountJson`: a service account key file. The probe exchanges a
  grant signed with the key for an access token (`providers.gcs_keys`; the
  token is cached until shortly before it expires), then uploads and deletes
  through google-cloud-storage (the JSON API). Both the token exchange and
  the storage calls go through google-auth's requests transport, so through
  urllib3, where `probe.control` bounds them by the probe's deadline. Every
  request is made once: no retry, no second token when the storage answers
  401 (that answer drops the cached token, for the next probe to exchange
  again).
- `hmacAccessKey` + `hmacSecret`: interoperability (HMAC) keys, for GCS's
  S3-compatible XML API, signed with SigV4 for region `auto`. The S3 prober
  (`providers.s3`) does that probe; this module only says where the bucket is.

Where the probe connects is Google's and not the Destination author's, so
`endpoints()` is empty. The key file is the Secret author's, though, and its
`token_uri` names where the operator would send a signed grant: only Google's
token endpoints are accepted (anything else is `EndpointBlocked`), so a
Secret cannot point the operator at an address of its choice. Tests make a
provider with other endpoints and token URIs (constructor parameters that
no Destination can set); a replaced storage endpoint is listed by
`endpoints()`, so the endpoint guard checks and pins it as it would an
author's.

SDKs are imported when a probe runs: google-cloud-storage (extra `gcs`) for
the key file, boto3 for HMAC keys (the `gcs` extra installs both).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, ClassVar

from destination_operator.api.spec import DestinationSpec, DestinationType, VerificationMode
from destination_operator.errors import (
    AccessDeniedError,
    AuthenticationFailedError,
    BucketNotFoundError,
    DestinationError,
    InvalidSpecError,
    ProbeFailedError,
    ProbeTimeoutError,
    ProviderUnavailableError,
    SecretKeyMissingError,
    translate,
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
from destination_operator.providers.gcs_keys import (
    GOOGLE_TOKEN_URIS,
    SERVICE_ACCOUNT_KEY,
    ServiceAccountKey,
    ServiceAccountKeyError,
    exchange_key,
    parse_service_account_key,
)
from destination_operator.providers.issued import AccessToken as IssuedToken
from destination_operator.providers.issued import Issued
from destination_operator.providers.s3 import (
    S3ApiProvider,
    S3Credentials,
    S3Target,
    S3Transport,
    client_timeout,
)
from destination_operator.providers.tokencache import AccessToken, shared_tokens
from destination_operator.providers.transport import ConnectionOptions, Transport

__all__ = [
    "GOOGLE_STORAGE_ENDPOINT",
    "GOOGLE_TOKEN_URIS",
    "GoogleCloudStorageProvider",
    "ServiceAccountKey",
    "ServiceAccountKeyError",
]

GOOGLE_STORAGE_ENDPOINT = "https://storage.googleapis.com"
"""Both GCS APIs: the JSON API (service accounts) and the XML API (HMAC keys)."""

HMAC_REGION = "auto"
HMAC_KEYS = ("hmacAccessKey", "hmacSecret")

GCS_SECRET_KEYS = SecretKeys(
    alternatives=((SERVICE_ACCOUNT_KEY,), HMAC_KEYS),
    description=(
        "serviceAccountJson (a service account key file in JSON), or hmacAccessKey and "
        "hmacSecret (interoperability HMAC keys)"
    ),
)

GcsCredentials = ServiceAccountKey | S3Credentials | AccessToken
"""A key file, HMAC keys, or an access token a workload identity's exchange issued."""


def _bucket(spec: DestinationSpec) -> str:
    member = spec.google_cloud_storage
    if member is None:
        raise InvalidSpecError("type GoogleCloudStorage needs the googleCloudStorage block")
    return member.bucket


# --- SDK errors -> DestinationError: the GCS part ------------------------------------------------


def _service_error(exc: Any, operation: str) -> DestinationError:
    """google-api-core's error for an HTTP answer of the JSON API, as a `DestinationError`."""
    status = int(getattr(exc, "code", 0) or 0)
    reason, message = "", str(getattr(exc, "message", "") or "")
    response = getattr(exc, "response", None)
    try:
        error = response.json()["error"] if response is not None else {}
        message = str(error.get("message") or message)
        reason = str((error.get("errors") or [{}])[0].get("reason") or "")
    except (ValueError, AttributeError, KeyError, IndexError, TypeError):
        pass  # not GCS's JSON error: keep the SDK's message
    # The first sentence says it all ("X does not have storage.objects.delete access to
    # ..."); the rest would crowd the advice added later out of a short message.
    message = message.split(". ", 1)[0].rstrip(".")
    detail = f"{operation}: HTTP {status}" + (f" {reason}" if reason else "")
    detail += f" ({message})" if message else ""
    if status == 401:
        return AuthenticationFailedError(detail)
    if status == 403:
        return AccessDeniedError(detail)
    if status == 404:
        if operation == "objects.delete" and "bucket" not in message.lower():
            return ProbeFailedError(f"{detail}; the probe object was gone before it was deleted")
        return BucketNotFoundError(detail)
    if status == 408:
        return ProbeTimeoutError(detail)
    return ProbeFailedError(detail)


@contextmanager
def _google_errors(operation: str, secrets: tuple[str, ...]) -> Iterator[None]:
    """The block's exceptions as `DestinationError`s scrubbed of `secrets`, saying which
    request failed: GCS's HTTP answers are classified here, connection and TLS errors by
    `errors.translate`."""
    try:
        yield
    except DestinationError as err:
        raise translate(err, secrets=secrets) from None
    except Exception as exc:  # noqa: BLE001 - translating every exception is the point
        api_exceptions = importlib.import_module("google.api_core.exceptions")
        if isinstance(exc, api_exceptions.GoogleAPICallError) and exc.code:
            raise translate(_service_error(exc, operation), secrets=secrets) from None
        lower = translate(exc, secrets=secrets)
        raise type(lower)(f"{operation}: {lower.message}", secrets=secrets) from None


# --- the JSON API probe ------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpOptions(ConnectionOptions):
    """How the probe's HTTP sessions reach Google: a CA bundle, an HTTPS proxy, verification.

    Both default to None (the system's trust store; no proxy but what the
    environment sets, as for every other SDK the operator uses). `verify`
    False (Development only) checks no certificate.
    """

    def configure(self, session: Any) -> Any:
        """Apply the options to a `requests.Session`, and refuse redirects; returns it."""
        if not self.verify or self.ca_bundle:
            trust: str | bool = self.ca_bundle if self.verify and self.ca_bundle else False
            session.verify = trust
            # requests lets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE replace a session's
            # `verify` on every request; this probe's trust must win over the environment.
            merge = session.merge_environment_settings

            def keep_trust(*args: Any, **kwargs: Any) -> dict[str, Any]:
                settings = dict(merge(*args, **kwargs))
                settings["verify"] = trust
                return settings

            session.merge_environment_settings = keep_trust
        if self.https_proxy:
            session.proxies = {"https": self.https_proxy}
        # Neither the token endpoint nor the storage API redirects: a redirect
        # would only take the signed grant or the token somewhere unchecked.
        session.max_redirects = 0
        return session


def _timeouts(remaining: float) -> tuple[float, float]:
    seconds = client_timeout(remaining)
    return (seconds, seconds)


def _sdk() -> SimpleNamespace:
    """The SDK modules a probe uses, imported now (they are untyped: used as `Any`)."""
    names = {
        "requests": "requests",
        "auth_requests": "google.auth.transport.requests",
        "crypt": "google.auth.crypt",
        "jwt": "google.auth.jwt",
        "oauth2": "google.oauth2.credentials",
        "storage": "google.cloud.storage",
    }
    try:
        return SimpleNamespace(**{n: importlib.import_module(m) for n, m in names.items()})
    except ImportError:
        raise ProviderUnavailableError("Google Cloud Storage", "gcs") from None


TokenSource = Callable[[Any, Any, tuple[float, float]], AccessToken]
"""Fetches an access token: (the SDK modules, a google-auth `Request`, timeouts) -> token."""


class _JsonApiProbe:
    """One probe through the JSON API: a token, then the storage calls; closes its sessions."""

    def __init__(self, project: str, api_endpoint: str, options: HttpOptions) -> None:
        self._sdk: Any = None  # imported by the first request
        self._project = project
        self._api_endpoint = api_endpoint
        self._options = options
        self._sessions: list[Any] = []
        self._blob: Any = None
        self.token = ""

    def _session(self, session: Any) -> Any:
        self._sessions.append(session)
        return self._options.configure(session)

    def fetch_token(self, key: Hashable, source: TokenSource, timeout: tuple[float, float]) -> None:
        """The cached token for `key`, or one `source` fetches now (one exchange per key at a
        time; a probe waits for another's no longer than its own timeout)."""
        sdk = self._sdk = _sdk()
        request = sdk.auth_requests.Request(self._session(sdk.requests.Session()))

        def exchanged() -> tuple[AccessToken, float]:
            token = source(sdk, request, timeout)
            return token, token.expires_at

        found: AccessToken = shared_tokens().fetch(key, exchanged, wait=timeout[0])
        self.token = found.token

    def use(self, issued: AccessToken) -> None:
        """Probe with a token the caller holds (a workload identity's)."""
        self._sdk = _sdk()
        self.token = issued.token

    def _client(self) -> Any:
        sdk = self._sdk
        credentials = sdk.oauth2.Credentials(token=self.token)
        # One attempt: no new token and no second request when the storage answers 401.
        session = sdk.auth_requests.AuthorizedSession(
            credentials,
            refresh_status_codes=(),
            max_refresh_attempts=0,
            auth_request=sdk.auth_requests.Request(self._session(sdk.requests.Session())),
        )
        client = sdk.storage.Client(
            project=self._project or "-",  # never None: the SDK would look for one
            credentials=credentials,
            _http=self._session(session),
            client_options={"api_endpoint": self._api_endpoint},
        )
        # The SDK fetches bucket metadata for its telemetry in a thread of its own (a
        # request no deadline bounds, which write-only keys may not make): not here.
        client._bucket_metadata_cache = None
        return client

    def write(self, bucket: str, object_key: str, timeout: tuple[float, float]) -> None:
        blob = self._client().bucket(bucket).blob(object_key)
        blob.metadata = {"purpose": "destination-operator-probe"}
        blob.upload_from_string(PROBE_BODY, content_type="text/plain", timeout=timeout, retry=None)
        self._blob = blob

    def delete(self, timeout: tuple[float, float]) -> None:
        # The generation just written (the blob knows it): on a versioned bucket no
        # noncurrent copy is left behind.
        self._blob.delete(timeout=timeout, retry=None)

    def close(self) -> None:
        for session in self._sessions:
            session.close()


# --- the provider ------------------------------------------------------------------------------


class _Interoperability(S3ApiProvider):
    """GCS's S3-compatible XML API with HMAC keys: the S3 prober, aimed at Google."""

    type = DestinationType.GoogleCloudStorage

    def target(self, spec: DestinationSpec) -> S3Target:
        return S3Target(
            bucket=_bucket(spec),
            region=HMAC_REGION,
            endpoint_url=GOOGLE_STORAGE_ENDPOINT,
            # Path style: the host stays Google's, and bucket names with dots work over TLS.
            path_style=True,
            user_endpoint=False,
        )


class GoogleCloudStorageProvider:
    """`type: GoogleCloudStorage` with a service account key or HMAC keys.

    The parameters are for tests and for what may come; a Destination sets
    none of them. `api_endpoint` and `interoperability_endpoint` replace
    Google's storage endpoint for each API (a replaced one is then checked
    by the endpoint guard, like an author's); `token_uris` are the token
    endpoints a key file may name; `ca_bundle` and `https_proxy` shape the
    HTTP clients of both paths, under each probe's own transport.
    """

    type: ClassVar[DestinationType] = DestinationType.GoogleCloudStorage
    secret_keys: ClassVar[SecretKeys] = GCS_SECRET_KEYS

    def __init__(
        self,
        *,
        api_endpoint: str = GOOGLE_STORAGE_ENDPOINT,
        interoperability_endpoint: str = GOOGLE_STORAGE_ENDPOINT,
        token_uris: frozenset[str] = GOOGLE_TOKEN_URIS,
        ca_bundle: str | None = None,
        https_proxy: str | None = None,
    ) -> None:
        self._api_endpoint = api_endpoint.rstrip("/")
        self._token_uris = frozenset(token_uris)
        self._options = HttpOptions(ca_bundle=ca_bundle, https_proxy=https_proxy)
        interoperability = interoperability_endpoint.rstrip("/")
        override = None if interoperability == GOOGLE_STORAGE_ENDPOINT else interoperability
        self._interoperability = _Interoperability(
            endpoint_override=override,
            transport=S3Transport(ca_bundle=ca_bundle, https_proxy=https_proxy),
        )

    def load_credentials(self, data: Mapping[str, str]) -> GcsCredentials:
        """The key file if the Secret has one, else the HMAC pair.

        Missing both: `SecretKeyMissingError` naming both forms; half a pair:
        naming the missing half.
        """
        key_file = (data.get(SERVICE_ACCOUNT_KEY) or "").strip()
        if key_file:
            return parse_service_account_key(key_file, token_uris=self._token_uris)
        # The HMAC pair goes into a header (SigV4): one line each, or SecretKeyInvalid.
        access_key, secret = (header_value(data, name) for name in HMAC_KEYS)
        if not access_key and not secret:
            raise SecretKeyMissingError(
                SERVICE_ACCOUNT_KEY,
                alternatives=(SERVICE_ACCOUNT_KEY, " + ".join(HMAC_KEYS)),
            )
        for name, value in zip(HMAC_KEYS, (access_key, secret), strict=True):
            if not value:
                raise SecretKeyMissingError(name)
        return S3Credentials(access_key_id=access_key, secret_access_key=secret)

    def load_identity(self, issued: Issued) -> AccessToken:
        """The access token a workload identity's exchange issued (Google's STS, or
        iamcredentials); the probe uses it as it is, without an exchange of its own."""
        if not isinstance(issued, IssuedToken) or not issued.token:
            raise InvalidSpecError(
                "GoogleCloudStorage takes a Google access token; the identity gave another kind"
            )
        return AccessToken(issued.token, issued.expires_at)

    def endpoints(self, spec: DestinationSpec) -> list[str]:
        """None for a Destination: the probe talks to Google. A replaced endpoint is listed."""
        _bucket(spec)
        replaced = [] if self._api_endpoint == GOOGLE_STORAGE_ENDPOINT else [self._api_endpoint]
        return replaced + self._interoperability.endpoints(spec)

    def probe(
        self,
        spec: DestinationSpec,
        credentials: GcsCredentials,
        object_key: str,
        mode: VerificationMode,
        timeout_seconds: float,
        *,
        transport: Transport | None = None,
    ) -> ProbeResult:
        """Upload a small object at `object_key`; in `WriteDelete` mode delete it again."""
        if isinstance(credentials, S3Credentials):
            return self._interoperability.probe(
                spec, credentials, object_key, mode, timeout_seconds, transport=transport
            )
        options = self._options.over(transport)
        return self._probe_json_api(spec, credentials, object_key, mode, timeout_seconds, options)

    def _probe_json_api(
        self,
        spec: DestinationSpec,
        key: ServiceAccountKey | AccessToken,
        object_key: str,
        mode: VerificationMode,
        timeout_seconds: float,
        options: HttpOptions,
    ) -> ProbeResult:
        bucket = _bucket(spec)
        watch = Stopwatch()
        secrets = (key.token,) if isinstance(key, AccessToken) else key.values()

        def timeouts(before: str) -> tuple[float, float]:
            remaining = watch.remaining(timeout_seconds)
            if remaining <= 0:
                raise ProbeTimeoutError(
                    f"the probe's {timeout_seconds:g}s were used up before {before}"
                )
            return _timeouts(remaining)

        def run(name: StepName, calls: Callable[[], None]) -> StepResult | DestinationError:
            step = Stopwatch()
            try:
                calls()
            except DestinationError as err:
                return err
            return StepResult(name, StepOutcome.Succeeded, step.ms())

        issued = key if isinstance(key, AccessToken) else None
        probe = _JsonApiProbe(
            "" if isinstance(key, AccessToken) else key.project_id, self._api_endpoint, options
        )
        cache_key = None if isinstance(key, AccessToken) else key.cache_key()

        def source(sdk: Any, request: Any, timeout: tuple[float, float]) -> AccessToken:
            assert isinstance(key, ServiceAccountKey)
            return exchange_key(sdk, key, request, timeout)

        def refused(error: DestinationError) -> DestinationError:
            if isinstance(error, AuthenticationFailedError) and cache_key is not None:
                shared_tokens().forget(cache_key)  # revoked: the next probe exchanges again
            return error

        def write() -> None:
            if issued is not None:  # a workload identity's token: its cache is the caller's
                probe.use(issued)
            else:
                assert cache_key is not None
                with _google_errors("token endpoint", secrets):
                    probe.fetch_token(cache_key, source, timeouts("the token request"))
            try:
                with _google_errors("objects.insert", (*secrets, probe.token)):
                    probe.write(bucket, object_key, timeouts("the upload"))
            except DestinationError as err:
                raise refused(err) from None

        def delete() -> None:
            try:
                with _google_errors("objects.delete", (*secrets, probe.token)):
                    probe.delete(timeouts("the delete"))
            except DestinationError as err:
                raise refused(err) from None

        try:
            return write_then_delete(
                lambda: run(StepName.Write, write),
                lambda: run(StepName.Delete, delete),
                mode,
                watch,
            )
        finally:
            probe.close()
