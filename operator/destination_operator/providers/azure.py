"""Azure Blob Storage, and Data Lake Storage Gen2 read by Databricks: a probe through the Blob API.

Where the probe connects. `spec.azureBlobStorage.endpoint` when set (sovereign
clouds, Azure Stack, emulators such as `http://127.0.0.1:10000/<account>`): the
Destination's author chose it, so `endpoints()` returns it and the endpoint
guard checks and pins it. Unset, it is the operator's (a setting: sovereign clouds,
tests), guarded too, else Azure's public one, made from the account name
(`providers.azure_target` says why that one is not guarded). Every host the probe resolves
itself still gets the `ProbeControl`'s refusal of cloud-metadata and link-local
addresses. A `dfs` endpoint (Databricks' `abfss://` host) becomes its `blob` twin.

Secret keys, one of: `accountKey` (Shared Key, for `storageAccountName`),
`sasToken` (a service or account SAS, with or without its leading `?`),
`connectionString` (as the portal shows it, with `AccountKey=` or
`SharedAccessSignature=`). When several are set, the first in that order is
used and the Write step says which. A connection string cannot move the data:
its `AccountName` must be the spec's account, and a blob endpoint it states
(`BlobEndpoint`, or the host `EndpointSuffix` implies) must be the spec's
endpoint, else the probe stops before any connection with `InvalidSpec`. So
the probe connects only where `endpoints()` said (and the guard checked),
whatever the Secret holds; its credential is all a connection string gives.

Databricks (`product: Databricks`) reads the container as an ADLS Gen2 file
system through the `dfs` endpoint. The probe stays Put Blob and Delete Blob:
the Blob API works on such accounts with the same keys and SAS, so it proves
the credentials can write into the container. On a hierarchical namespace the
probe's folder (its name starts with `.`) stays behind, empty, and the `dfs`
endpoint's network rules are not reached; the Write step's message says so.
No emulator serves `dfs`, so none of this is tested against one.

The SDK is azure-storage-blob, imported when a probe runs (without it:
`ProviderUnavailableError` naming the extra, `pip install
'destination-operator[azure]'`). Its synchronous clients send through
azure-core's requests transport, that is urllib3, so the probe's
`ProbeControl` (hard deadline, pinned addresses, see `probe.control`) holds.
The client makes one attempt (the operator retries with backoff), follows no
redirect (one could lead past the guard), and bounds connect and read by what
is left of the probe's timeout.
"""

from __future__ import annotations

import base64
import binascii
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any, ClassVar
from urllib.parse import parse_qs

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
    SecretKeyInvalidError,
    SecretKeyMissingError,
    translate,
)
from destination_operator.expiry import Expiry, sas_expiry
from destination_operator.outcome import StepName, StepOutcome, StepResult
from destination_operator.providers.azure_target import AzureTarget, azure_target, same_endpoint
from destination_operator.providers.base import (
    PROBE_BODY,
    ProbeResult,
    SecretKeys,
    Stopwatch,
    header_problem,
    header_value,
    write_then_delete,
)
from destination_operator.providers.issued import AccessToken, Issued
from destination_operator.providers.transport import ConnectionOptions, Transport
from destination_operator.redaction import scrub

__all__ = [
    "AZURE_SECRET_KEYS",
    "AzureBlobStorageProvider",
    "AzureCredentials",
    "AzureTarget",
    "ClientOptions",
    "azure_target",
    "parse_connection_string",
]

SECRET_KEY_ORDER = ("accountKey", "sasToken", "connectionString")
"""The Secret keys the provider reads, in the order it prefers them."""

AZURE_SECRET_KEYS = SecretKeys(
    alternatives=tuple((key,) for key in SECRET_KEY_ORDER),
    description=(
        "one of: accountKey (the storage account's key), sasToken (a SAS token), "
        "connectionString (with AccountKey or SharedAccessSignature); "
        "the first present in that order is used"
    ),
)

_MIN_TIMEOUT = 0.1
_DATABRICKS_NOTE = (
    "through the Blob API; Databricks reads this container through the dfs endpoint, "
    "which the probe does not reach"
)
# Azure answers a bad Shared Key signature or SAS with this message (code
# AuthenticationFailed); Azurite sends the same message with code
# AuthorizationFailure. The message is what says the credentials were refused.
_NOT_AUTHENTICATED = "server failed to authenticate the request"

_AUTH_CODES = frozenset(
    {"AuthenticationFailed", "InvalidAuthenticationInfo", "NoAuthenticationInformation"}
)
_DENIED_CODES = frozenset(
    {
        "AuthorizationFailure",
        "AuthorizationPermissionMismatch",
        "AuthorizationResourceTypeMismatch",
        "AuthorizationServiceMismatch",
        "AuthorizationProtocolMismatch",
        "AuthorizationSourceIPMismatch",
        "InsufficientAccountPermissions",
        "KeyBasedAuthenticationNotPermitted",
        "AccountIsDisabled",
    }
)
_MISSING_CODES = frozenset({"ContainerNotFound", "ResourceNotFound"})
_TIMEOUT_CODES = frozenset({"OperationTimedOut"})


# --- credentials ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AzureCredentials:
    """A Shared Key or a SAS token, and where a connection string said they belong.

    `source` is the Secret key they came from; `repr` shows no value.
    """

    source: str
    account_key: str | None = field(default=None, repr=False)
    sas_token: str | None = field(default=None, repr=False)
    account_name: str | None = None  # a connection string's AccountName
    blob_endpoint: str | None = None  # the blob endpoint a connection string states
    secrets: tuple[str, ...] = field(default=(), repr=False)  # every value to scrub
    bearer: tuple[str, float] | None = field(default=None, repr=False)  # Entra's token, expiry


def _account_key(value: str, where: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise AuthenticationFailedError(
            f"{where} is not base64 text (an account key is the base64 text Azure shows)"
        ) from None
    return value


def _sas_token(value: str, where: str) -> tuple[str, tuple[str, ...]]:
    """The token without its leading `?`, and its signature (also scrubbed on its own)."""
    token = value.strip().lstrip("?")
    signatures = tuple(parse_qs(token).get("sig", ()))
    if not signatures:
        raise AuthenticationFailedError(f"{where} has no sig= part: it is not a SAS token")
    return token, signatures


def parse_connection_string(text: str) -> dict[str, str]:
    """`Name=value;...` as a dict with lower-case names (values keep every `=` after the first)."""
    fields: dict[str, str] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise AuthenticationFailedError(
                "the Secret's connectionString is not a list of Name=value pairs separated by ';'"
            )
        fields[name.strip().lower()] = value.strip()
    return fields


# The fields of a connection string the probe reads, by their lower-case names: each ends up
# in a URL, a header or a signature, so each must be one line (like a Secret value of its own).
_READ_FIELDS = {
    name.lower(): name
    for name in (
        "AccountName",
        "AccountKey",
        "SharedAccessSignature",
        "BlobEndpoint",
        "EndpointSuffix",
        "DefaultEndpointsProtocol",
    )
}


def _from_connection_string(text: str) -> AzureCredentials:
    fields = parse_connection_string(text)
    for name, shown in _READ_FIELDS.items():
        problem = header_problem(fields.get(name, ""))
        if problem is not None:
            # A line break between fields is harmless: each field's ends are stripped.
            raise SecretKeyInvalidError("connectionString", f"{problem} inside its {shown} field")
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        raise InvalidSpecError(
            "the Secret's connectionString uses UseDevelopmentStorage, which is not supported: "
            "give AccountName, AccountKey and BlobEndpoint"
        )
    account = fields.get("accountname") or None
    endpoint = fields.get("blobendpoint") or None
    suffix = fields.get("endpointsuffix")
    if endpoint is None and suffix and account:
        protocol = fields.get("defaultendpointsprotocol") or "https"
        endpoint = f"{protocol}://{account}.blob.{suffix}"
    secrets = [text]
    if fields.get("accountkey"):
        key = _account_key(fields["accountkey"], "the AccountKey in the Secret's connectionString")
        secrets.append(key)
        return AzureCredentials(
            "connectionString",
            account_key=key,
            account_name=account,
            blob_endpoint=endpoint,
            secrets=tuple(secrets),
        )
    if fields.get("sharedaccesssignature"):
        token, signatures = _sas_token(
            fields["sharedaccesssignature"],
            "the SharedAccessSignature in the Secret's connectionString",
        )
        return AzureCredentials(
            "connectionString",
            sas_token=token,
            account_name=account,
            blob_endpoint=endpoint,
            secrets=(*secrets, token, *signatures),
        )
    raise AuthenticationFailedError(
        "the Secret's connectionString has neither AccountKey nor SharedAccessSignature"
    )


def load_credentials(data: Mapping[str, str]) -> AzureCredentials:
    """The credential of the first of `accountKey`, `sasToken`, `connectionString` that is set.

    Only the one used is checked for a line break or control character inside
    (`SecretKeyInvalidError`); a connection string, field by field.
    """
    if account_key := header_value(data, "accountKey"):
        key = _account_key(account_key, "the Secret's accountKey")
        return AzureCredentials("accountKey", account_key=key, secrets=(key,))
    if sas := header_value(data, "sasToken"):
        token, signatures = _sas_token(sas, "the Secret's sasToken")
        return AzureCredentials("sasToken", sas_token=token, secrets=(sas, token, *signatures))
    # Its ends stripped only: line breaks between its fields are allowed (checked per field).
    if connection := (data.get("connectionString") or "").strip():
        return _from_connection_string(connection)
    raise SecretKeyMissingError(SECRET_KEY_ORDER[0], alternatives=SECRET_KEY_ORDER)


# --- where the probe goes ----------------------------------------------------------------------


def check_location(target: AzureTarget, credentials: AzureCredentials) -> None:
    """Refuse a connection string that names another account or endpoint than the spec."""
    if credentials.account_name and credentials.account_name.lower() != target.account.lower():
        raise InvalidSpecError(
            "the Secret's connectionString is for another storage account than "
            f"spec.azureBlobStorage.storageAccountName ({target.account})"
        )
    if credentials.blob_endpoint and not same_endpoint(credentials.blob_endpoint, target.endpoint):
        raise InvalidSpecError(
            "the Secret's connectionString names another blob endpoint than the spec "
            f"({target.endpoint}); the spec alone says where data goes"
        )


# --- the client --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientOptions:
    """How a probe's client connects.

    `ca_bundle` (a CA file to trust instead of the system's), `https_proxy`
    (a proxy URL for https) and `verify` (False, in Development only: no
    certificate check) come from the probe's `Transport` over the provider's
    own settings.
    """

    timeout_seconds: float
    ca_bundle: str | None = None
    https_proxy: str | None = None
    verify: bool = True

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the SDK's client constructors."""
        timeout = max(_MIN_TIMEOUT, self.timeout_seconds)
        kwargs: dict[str, Any] = {
            "retry_total": 0,  # one attempt: the operator retries with backoff
            "permit_redirects": False,  # a redirect could lead past the endpoint guard
            "connection_timeout": timeout,
            "read_timeout": timeout,
            "connection_verify": (self.ca_bundle or True) if self.verify else False,
            "user_agent": "destination-operator",
        }
        if self.https_proxy:
            kwargs["proxies"] = {"https": self.https_proxy}
        return kwargs


@dataclass(frozen=True)
class _Sdk:
    """The SDK's classes the probe uses (imported on first use)."""

    container_client: Any
    content_settings: Any
    named_key_credential: Any
    sas_credential: Any
    access_token: Any


def _sdk() -> _Sdk:
    try:
        from azure.core.credentials import AccessToken, AzureNamedKeyCredential, AzureSasCredential
        from azure.storage.blob import ContainerClient, ContentSettings
    except ImportError:
        raise ProviderUnavailableError("Azure Storage (azure-storage-blob)", "azure") from None
    return _Sdk(
        ContainerClient, ContentSettings, AzureNamedKeyCredential, AzureSasCredential, AccessToken
    )


def container_client(
    target: AzureTarget, credentials: AzureCredentials, options: ClientOptions
) -> Any:
    """An `azure.storage.blob.ContainerClient` for the target (a context manager).

    One per probe, closed after it: making one takes about 0.1 ms, so unlike
    boto3's clients they are not worth keeping.
    """
    sdk = _sdk()
    credential: Any
    if credentials.bearer is not None:  # a workload identity's: the SDK sends it over HTTPS only
        token, expires = credentials.bearer
        issued = sdk.access_token(token, int(expires))
        credential = SimpleNamespace(get_token=lambda *_scopes, **_options: issued)
    elif credentials.account_key is not None:
        credential = sdk.named_key_credential(target.account, credentials.account_key)
    else:
        credential = sdk.sas_credential(credentials.sas_token or "")
    return sdk.container_client(
        target.endpoint, target.container, credential=credential, **options.as_kwargs()
    )


# --- errors ------------------------------------------------------------------------------------


def _service_error(exc: Any) -> tuple[type[DestinationError], str]:
    """The storage service answered with an error: its code and the first line of its message."""
    raw_code = getattr(exc, "error_code", None) or ""
    code = str(getattr(raw_code, "value", raw_code))
    if not code and exc.response is not None:
        code = str(exc.response.headers.get("x-ms-error-code") or "")
    status = exc.status_code
    said = (str(getattr(exc, "message", "") or "").strip().splitlines() or [""])[0]
    detail = f"{code or status}" + (f" ({said})" if said else "")
    if code in _AUTH_CODES or status == 401 or said.lower().startswith(_NOT_AUTHENTICATED):
        return AuthenticationFailedError, detail
    if code in _DENIED_CODES or (not code and status == 403):
        return AccessDeniedError, detail
    if code in _MISSING_CODES:
        return BucketNotFoundError, detail
    if code in _TIMEOUT_CODES:
        return ProbeTimeoutError, detail
    return ProbeFailedError, detail


def storage_error(
    exc: BaseException, operation: str, secrets: Iterable[str] = ()
) -> DestinationError:
    """The `DestinationError` for what the SDK raised during `operation` (PutBlob, DeleteBlob).

    Service answers are classified by error code; transport errors by the
    requests/urllib3/socket exception the SDK wraps (`inner_exception`),
    through `errors.translate`.
    """
    secrets = tuple(secrets)
    exceptions = sys.modules.get("azure.core.exceptions")
    answered = exceptions is not None and isinstance(exc, exceptions.HttpResponseError)
    if (
        answered
        and getattr(exc, "status_code", None)
        and getattr(exc, "response", None) is not None
    ):
        kind, detail = _service_error(exc)
        return kind(f"{operation}: {detail}", secrets=secrets)
    error: DestinationError
    inner = getattr(exc, "inner_exception", None)
    if exceptions is not None and isinstance(exc, exceptions.AzureError) and inner is not None:
        error = translate(inner, secrets=secrets)
        if type(error) is ProbeFailedError and isinstance(
            exc, exceptions.ServiceRequestTimeoutError | exceptions.ServiceResponseTimeoutError
        ):
            error = ProbeTimeoutError(error.message, secrets=secrets)
    else:
        error = translate(exc, secrets=secrets)
    error.message = scrub(f"{operation}: {error.message}", secrets)
    error.args = (error.message,)
    return error


# --- the provider ------------------------------------------------------------------------------


class AzureBlobStorageProvider:
    """`type: AzureBlobStorage`: Put Blob, then Delete Blob, in the spec's container.

    `ca_bundle` and `https_proxy` go to every probe's client (see `ClientOptions`),
    unless the probe's own transport sets them. `blob_endpoint` (with `{account}`) replaces
    Azure's public endpoint, and `blob_ca_bundle` is trusted there only (operator settings).
    """

    type: ClassVar[DestinationType] = DestinationType.AzureBlobStorage
    secret_keys: ClassVar[SecretKeys] = AZURE_SECRET_KEYS

    def __init__(
        self,
        *,
        ca_bundle: str | None = None,
        https_proxy: str | None = None,
        blob_endpoint: str | None = None,
        blob_ca_bundle: str | None = None,
    ) -> None:
        self.options = ConnectionOptions(ca_bundle=ca_bundle, https_proxy=https_proxy)
        self.blob_endpoint, self.blob_ca_bundle = blob_endpoint, blob_ca_bundle

    def load_credentials(self, data: Mapping[str, str]) -> AzureCredentials:
        """The first credential set in the Secret; surrounding whitespace is ignored."""
        return load_credentials(data)

    def load_identity(self, issued: Issued) -> AzureCredentials:
        """The bearer token a workload identity's exchange issued (Entra ID's, for Storage)."""
        if not isinstance(issued, AccessToken) or not issued.token:
            raise InvalidSpecError("AzureBlobStorage takes an Entra token, not another kind")
        bearer = (issued.token, issued.expires_at)
        return AzureCredentials("workload identity", secrets=(issued.token,), bearer=bearer)

    def expiries(self, credentials: AzureCredentials) -> list[Expiry]:
        """A SAS token's `se`, alone or in a connection string; an account key never expires."""
        if not credentials.sas_token:
            return []
        where = (
            "the SAS token in the Secret's sasToken"
            if credentials.source == "sasToken"
            else "the SharedAccessSignature in the Secret's connectionString"
        )
        found = sas_expiry(credentials.sas_token, where)
        return [found] if found is not None else []

    def endpoints(self, spec: DestinationSpec) -> list[str]:
        """The blob endpoint when the Destination's author or the operator chose it; [] for
        Azure's own."""
        target = azure_target(spec, self.blob_endpoint)
        return [target.endpoint] if target.user_endpoint or self.blob_endpoint else []

    def probe(
        self,
        spec: DestinationSpec,
        credentials: AzureCredentials,
        object_key: str,
        mode: VerificationMode,
        timeout_seconds: float,
        *,
        transport: Transport | None = None,
    ) -> ProbeResult:
        """Put Blob at `object_key`; in `WriteDelete` mode delete it again.

        A connection string that names another account or endpoint than the
        spec stops the probe before any connection (no steps, `InvalidSpec`).
        """
        secrets = credentials.secrets
        watch = Stopwatch()
        connection = self.options.over(transport)
        options = ClientOptions(
            timeout_seconds,
            ca_bundle=connection.ca_bundle,
            https_proxy=connection.https_proxy,
            verify=connection.verify,
        )
        try:
            target = azure_target(spec, self.blob_endpoint)
            if not target.user_endpoint and self.blob_ca_bundle and not options.ca_bundle:
                options = replace(options, ca_bundle=self.blob_ca_bundle)
            check_location(target, credentials)
            sdk = _sdk()
            client = container_client(target, credentials, options)
        except Exception as exc:  # noqa: BLE001 - the probe's error, before any step
            return ProbeResult((), translate(exc, secrets=secrets))

        def run(
            name: StepName, operation: str, note: str, call: Callable[[float], object]
        ) -> StepResult | DestinationError:
            step = Stopwatch()
            remaining = watch.remaining(timeout_seconds)
            if remaining <= 0:
                return ProbeTimeoutError(
                    f"the probe's {timeout_seconds:g}s were used up before {name.value}"
                )
            try:
                call(max(_MIN_TIMEOUT, remaining))
            except Exception as exc:  # noqa: BLE001 - every SDK error becomes the step's error
                return storage_error(exc, operation, secrets)
            return StepResult(name, StepOutcome.Succeeded, step.ms(), note)

        used = f"with the Secret's {credentials.source}"
        with client:
            return write_then_delete(
                lambda: run(
                    StepName.Write,
                    "PutBlob",
                    f"{used}, {_DATABRICKS_NOTE}" if target.databricks else used,
                    lambda left: client.upload_blob(
                        object_key,
                        PROBE_BODY,
                        overwrite=True,
                        content_settings=sdk.content_settings(content_type="text/plain"),
                        metadata={"purpose": "destination_operator_probe"},
                        connection_timeout=left,
                        read_timeout=left,
                    ),
                ),
                lambda: run(
                    StepName.Delete,
                    "DeleteBlob",
                    used,
                    lambda left: client.delete_blob(
                        object_key, connection_timeout=left, read_timeout=left
                    ),
                ),
                mode,
                watch,
            )
