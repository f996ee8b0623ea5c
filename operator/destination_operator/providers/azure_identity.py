"""Azure workload identity: a Kubernetes ServiceAccount token, presented to Microsoft Entra ID
as a client assertion, for a bearer token to Blob storage.

- Which identity: the ServiceAccount's annotations in AKS's convention,
  `azure.workload.identity/client-id` (the application or managed identity whose
  federated credential trusts the ServiceAccount) and `azure.workload.identity/tenant-id`
  (else the operator's default tenant). The ServiceAccount token's audience is Entra's,
  `api://AzureADTokenExchange`.
- The exchange: azure-identity's `ClientAssertionCredential`, whose assertion is the token
  the operator holds: the client-credentials grant with a JWT bearer client assertion at
  `<authority>/<tenant>/oauth2/v2.0/token`, scope `https://storage.azure.com/.default`.
  Never `DefaultAzureCredential` or `WorkloadIdentityCredential`'s environment, whose
  chains fall back to the node's managed identity.
- Where: the authority host is the operator's (a setting; Entra's public cloud by default),
  never a Destination's; HTTPS only (azure-identity refuses anything else). One attempt,
  bounded by the caller's timeout.

Refusals raise `AssertionRefused` with Entra's error, its AADSTS code and description,
never the token.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from destination_operator.providers.issued import AccessToken

__all__ = [
    "AUDIENCE",
    "AUTHORITY_HOST",
    "CLIENT_ID_ANNOTATION",
    "STORAGE_SCOPE",
    "TENANT_ID_ANNOTATION",
    "AssertionRefused",
    "AzureIdentity",
    "IdentityNotConfigured",
    "azure_identity",
    "exchange",
]

CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"
TENANT_ID_ANNOTATION = "azure.workload.identity/tenant-id"
AUDIENCE = "api://AzureADTokenExchange"
AUTHORITY_HOST = "https://login.microsoftonline.com"
STORAGE_SCOPE = "https://storage.azure.com/.default"

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_AADSTS = re.compile(r"AADSTS[0-9]{4,8}")


class IdentityNotConfigured(ValueError):
    """The ServiceAccount (or the operator's default) names no usable Entra identity."""


class AssertionRefused(Exception):
    """Entra ID refused the assertion, or could not be reached; `code` is Entra's error
    (`invalid_client`, ..., or `unreachable`), `aadsts` its AADSTS code when it gave one."""

    def __init__(self, code: str, aadsts: str, detail: str) -> None:
        self.code, self.aadsts, self.detail = code, aadsts, detail
        said = " ".join(part for part in (aadsts, detail) if part and part not in code)
        super().__init__(f"entra: {code}" + (f": {said}" if said else ""))


@dataclass(frozen=True)
class AzureIdentity:
    """The application (client) to become, in its tenant."""

    tenant_id: str
    client_id: str

    @property
    def token_audience(self) -> str:
        return AUDIENCE

    @property
    def key(self) -> tuple[str, str]:
        """What, besides the ServiceAccount's uid, changes the result (for a cache key)."""
        return (self.tenant_id, self.client_id)

    @property
    def described(self) -> str:
        return f"Entra application {self.client_id} in tenant {self.tenant_id}"


def azure_identity(
    annotations: Mapping[str, str], where: str, *, default_tenant: str | None = None
) -> AzureIdentity:
    """The identity `annotations` name (`where`: "ServiceAccount 'x'", for messages);
    `IdentityNotConfigured` saying which annotation is missing or malformed."""
    client = annotations.get(CLIENT_ID_ANNOTATION, "").strip()
    if not client:
        raise IdentityNotConfigured(
            f"{where} has no {CLIENT_ID_ANNOTATION} annotation naming the Entra application "
            "or managed identity whose federated credential trusts it"
        )
    if not _GUID.fullmatch(client):
        raise IdentityNotConfigured(f"{where}: its {CLIENT_ID_ANNOTATION} annotation is not a GUID")
    tenant = annotations.get(TENANT_ID_ANNOTATION, "").strip() or (default_tenant or "").strip()
    if not tenant:
        raise IdentityNotConfigured(
            f"{where} has no {TENANT_ID_ANNOTATION} annotation, and the operator names no "
            "default tenant"
        )
    if not _GUID.fullmatch(tenant):
        raise IdentityNotConfigured(f"{where}: the tenant ID is not a GUID")
    return AzureIdentity(tenant_id=tenant.lower(), client_id=client.lower())


def _refusal(err: Any, token: str) -> AssertionRefused:
    """Entra's answer in `err` (azure-core's `ClientAuthenticationError`), without the token."""
    response = getattr(err, "response", None)
    document: Any = {}
    if response is not None:
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            document = json.loads(response.text())
    if not isinstance(document, dict) or "error" not in document:
        status = getattr(response, "status_code", 0)
        detail = str(getattr(err, "message", "") or err).replace(token, "[token]")[:300]
        return AssertionRefused(f"HTTP {status}" if status else "unreachable", "", detail)
    description = str(document.get("error_description") or "").replace(token, "[token]")
    description = description.split("\r\n", 1)[0].split("\n", 1)[0][:300]
    found = _AADSTS.search(description)
    aadsts = found.group(0) if found else ""
    if aadsts and description.startswith(aadsts):
        description = description[len(aadsts) :].lstrip(": ")
    return AssertionRefused(str(document.get("error") or ""), aadsts, description)


def exchange(
    token: str,
    identity: AzureIdentity,
    *,
    timeout_seconds: float,
    authority_host: str = AUTHORITY_HOST,
    ca_bundle: str | None = None,
) -> AccessToken:
    """A bearer token for Blob storage from the ServiceAccount `token` (blocking).
    `ca_bundle`: the CA certificates the authority is checked with (tests, private
    authorities); the system's by default."""
    try:
        credentials = importlib.import_module("azure.identity")
        core_exceptions = importlib.import_module("azure.core.exceptions")
    except ImportError:
        raise AssertionRefused("unavailable", "", "azure-identity is not installed") from None
    seconds = max(1.0, timeout_seconds)
    options: dict[str, Any] = {
        "authority": authority_host,
        "retry_total": 0,
        "connection_timeout": seconds,
        "read_timeout": seconds,
    }
    if ca_bundle:
        options["connection_verify"] = ca_bundle
    try:
        credential = credentials.ClientAssertionCredential(
            identity.tenant_id, identity.client_id, lambda: token, **options
        )
    except ValueError as err:  # an authority that is not HTTPS
        raise AssertionRefused("invalid_authority", "", str(err)[:300]) from None
    try:
        with credential:
            issued = credential.get_token_info(STORAGE_SCOPE)
    except core_exceptions.ClientAuthenticationError as err:
        raise _refusal(err, token) from None
    except core_exceptions.AzureError as err:  # no answer: connection, TLS, timeout
        detail = str(getattr(err, "message", "") or type(err).__name__).replace(token, "[token]")
        raise AssertionRefused("unreachable", "", detail[:300]) from None
    return AccessToken(str(issued.token), float(issued.expires_on))
