"""Where an Azure Blob Storage probe goes: the account, the container and the blob endpoint.

`spec.azureBlobStorage.endpoint` when set: the Destination's author chose it, so the
provider lists it for the endpoint guard. Unset, the operator's template (`blob_endpoint`,
the setting `azure_blob_endpoint`, with `{account}`: sovereign clouds, tests), which the
provider lists too, else Azure's public `https://<account>.blob.core.windows.net`. That host
is made from the account name, as an S3 virtual-hosted bucket makes one, but it is not
guarded (as AWS's own endpoints are not): the name is 3-24 lowercase letters and digits
under Microsoft's own zone, so it cannot be pointed at an address of the author's choosing,
and with Azure Private Link that very name rightly resolves to a private address in the
customer's network, which the guard would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from destination_operator.api.backends.azure import AzureProduct
from destination_operator.api.spec import DestinationSpec
from destination_operator.errors import InvalidSpecError

__all__ = ["PUBLIC_ENDPOINT", "AzureTarget", "azure_target", "same_endpoint"]

PUBLIC_ENDPOINT = "https://{account}.blob.core.windows.net"
"""Azure's public cloud's blob endpoint, `{account}` standing for the storage account."""


@dataclass(frozen=True)
class AzureTarget:
    """The container a probe writes to, and the blob service URL it connects to."""

    account: str
    container: str
    endpoint: str  # no trailing slash
    user_endpoint: bool  # the Destination's author chose it: guard it
    databricks: bool


def _blob_twin(url: str, account: str) -> str:
    """`url` with an `<account>.dfs.` host turned into `<account>.blob.`; else `url` as it is."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    prefix = f"{account}.dfs."
    if not host.lower().startswith(prefix):
        return url
    netloc = f"{account}.blob.{host[len(prefix) :]}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()


def azure_target(spec: DestinationSpec, template: str | None = None) -> AzureTarget:
    """Account, container and blob endpoint for `spec`; `template` (with `{account}`) is the
    operator's endpoint for a spec that names none, instead of Azure's public one."""
    member = spec.azure_blob_storage
    if member is None:
        raise InvalidSpecError("type AzureBlobStorage needs the azureBlobStorage block")
    account = member.storage_account_name
    chosen = (member.endpoint or "").strip()
    default = (template or PUBLIC_ENDPOINT).replace("{account}", account)
    return AzureTarget(
        account=account,
        container=member.container_name,
        endpoint=(_blob_twin(chosen, account) if chosen else default).rstrip("/"),
        user_endpoint=bool(chosen),
        databricks=member.product == AzureProduct.Databricks,
    )


def same_endpoint(first: str, second: str) -> bool:
    """Scheme, host, port and path are the same (case of the host and a final `/` aside)."""

    def key(url: str) -> tuple[str, str, int | None, str]:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        port = parts.port or {"https": 443, "http": 80}.get(scheme)
        return scheme, (parts.hostname or "").lower(), port, parts.path.rstrip("/")

    try:
        return key(first) == key(second)
    except ValueError:  # a port that is not a number
        return False
