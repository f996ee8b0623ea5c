"""`type: GoogleCloudStorage`: a bucket in Google Cloud Storage, with either kind of key.

The Secret holds one of two credential forms (a Secret with both uses the
service account):

- `serviceAccountJson`: a service account key file. The probe signs an
  RFC 7523 JWT grant with the key, exchanges it at the key file's `token_uri`
  for an access token, then uploads and deletes through google-cloud-storage
  (the JSON API). Both the token exchange and the storage calls go through
  google-auth's requests transport, so through urllib3, where `probe.control`
  bounds them by the probe's deadline. The exchange is written here rather
  than left to google-auth's service-account credentials, because those
  retry a failed exchange with sleeps in between that no deadline can cut,
  and refresh the token again when the storage answers 401; here every
  request is made once. A fresh token is fetched for every probe: the point
  is to learn whether the key works now.
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
import json
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, ClassVar

from destination_operator.api.spec import DestinationSpec, DestinationType, VerificationMode
from destination_operator.api.status import Reason
from destination_operator.errors import (
    AccessDeniedError,
    AuthenticationFailedError,
    BucketNotFoundError,
    DestinationError,
    EndpointBlockedError,
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
from destination_operator.providers.s3 import (
    S3ApiProvider,
    S3Credentials,
    S3Target,
    S3Transport,
    client_timeout,
)
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
HMAC_REGION = "auto"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GRANT_LIFETIME = 3600  # seconds; Google's maximum

SERVICE_ACCOUNT_KEY = "serviceAccountJson"
HMAC_KEYS = ("hmacAccessKey", "hmacSecret")

GCS_SECRET_KEYS = SecretKeys(
    alternatives=((SERVICE_ACCOUNT_KEY,), HMAC_KEYS),
    description=(
        "serviceAccountJson (a service account key file in JSON), or hmacAccessKey and "
        "hmacSecret (interoperability HMAC keys)"
    ),
)

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


GcsCredentials = ServiceAccountKey | S3Credentials


def _bucket(spec: DestinationSpec) -> str:
    member = spec.google_cloud_storage
    if member is None:
        raise InvalidSpecError("type GoogleCloudStorage needs the googleCloudStorage block")
    return member.bucket


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


def _grant_error(status: int, body: bytes) -> DestinationError:
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


class _JsonApiProbe:
    """One probe through the JSON API: a token, then the storage calls; closes its sessions."""

    def __init__(self, key: ServiceAccountKey, api_endpoint: str, options: HttpOptions) -> None:
        self._sdk: Any = None  # imported by the first request
        self._key = key
        self._api_endpoint = api_endpoint
        self._options = options
        self._sessions: list[Any] = []
        self._blob: Any = None
        self.token = ""

    def _session(self, session: Any) -> Any:
        self._sessions.append(session)
        return self._options.configure(session)

    def fetch_token(self, timeout: tuple[float, float]) -> None:
        """Exchange a signed grant for an access token at the key's `token_uri` (one request)."""
        sdk = self._sdk = _sdk()
        try:
            signer = sdk.crypt.RSASigner.from_string(
                self._key.private_key, self._key.private_key_id
            )
        except Exception:  # noqa: BLE001 - whatever the parser says, it may quote the key
            raise ServiceAccountKeyError(
                f"the Secret's {SERVICE_ACCOUNT_KEY}: 'private_key' is not a usable RSA key"
            ) from None
        now = int(time.time())
        claims = {
            "iss": self._key.client_email,
            "scope": STORAGE_SCOPE,
            "aud": GRANT_AUDIENCE,
            "iat": now,
            "exp": now + GRANT_LIFETIME,
        }
        assertion = sdk.jwt.encode(signer, claims)
        body = urllib.parse.urlencode({"grant_type": JWT_BEARER, "assertion": assertion})
        request = sdk.auth_requests.Request(self._session(sdk.requests.Session()))
        response = request(
            url=self._key.token_uri,
            method="POST",
            body=body.encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=timeout,
        )
        if response.status != 200:
            raise _grant_error(response.status, response.data)
        try:
            self.token = str(json.loads(response.data)["access_token"])
        except (ValueError, KeyError, TypeError):
            raise ProbeFailedError("token endpoint: HTTP 200 without an access token") from None

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
            project=self._key.project_id or "-",  # never None: the SDK would look for one
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
        key: ServiceAccountKey,
        object_key: str,
        mode: VerificationMode,
        timeout_seconds: float,
        options: HttpOptions,
    ) -> ProbeResult:
        bucket = _bucket(spec)
        watch = Stopwatch()
        secrets = key.values()

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

        probe = _JsonApiProbe(key, self._api_endpoint, options)

        def write() -> None:
            with _google_errors("token endpoint", secrets):
                probe.fetch_token(timeouts("the token request"))
            with _google_errors("objects.insert", (*secrets, probe.token)):
                probe.write(bucket, object_key, timeouts("the upload"))

        def delete() -> None:
            with _google_errors("objects.delete", (*secrets, probe.token)):
                probe.delete(timeouts("the delete"))

        try:
            return write_then_delete(
                lambda: run(StepName.Write, write),
                lambda: run(StepName.Delete, delete),
                mode,
                watch,
            )
        finally:
            probe.close()
