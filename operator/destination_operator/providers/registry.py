"""Which provider serves which `DestinationType`.

A registry maps each type to exactly one provider and refuses a second
registration for the same type (two backends silently competing for one type
would be a packaging bug, found at start-up rather than at probe time).
`default_registry()` holds the providers that ship with the operator; none of
them imports its SDK until it probes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from destination_operator.api.spec import DestinationType
from destination_operator.api.status import Reason
from destination_operator.errors import ProbeFailedError
from destination_operator.providers.base import Provider

__all__ = [
    "DuplicateProviderError",
    "ProviderNotFoundError",
    "Registry",
    "credential_keys",
    "default_registry",
    "registry_for",
]


class DuplicateProviderError(ValueError):
    """A provider is already registered for this type."""


class ProviderNotFoundError(ProbeFailedError):
    """No provider for this type in this operator build: Stalled, like a missing SDK."""

    reason = Reason.ProviderUnavailable


class Registry:
    """DestinationType -> provider; one provider per type."""

    def __init__(self) -> None:
        self._providers: dict[DestinationType, Provider] = {}

    def register(self, provider: Provider) -> Provider:
        """Add `provider` for `provider.type`; raises `DuplicateProviderError` if taken."""
        kind = DestinationType(provider.type)
        existing = self._providers.get(kind)
        if existing is not None:
            raise DuplicateProviderError(
                f"a provider for {kind.value} is already registered: {type(existing).__name__}"
            )
        self._providers[kind] = provider
        return provider

    def get(self, kind: DestinationType | str) -> Provider:
        """The provider for `kind`; raises `ProviderNotFoundError` when there is none."""
        try:
            return self._providers[DestinationType(kind)]
        except (KeyError, ValueError):
            raise ProviderNotFoundError(
                f"this operator has no provider for type {str(kind)!r} yet"
            ) from None

    def types(self) -> list[DestinationType]:
        """The registered types, in registration order."""
        return list(self._providers)

    def __contains__(self, kind: object) -> bool:
        return kind in self._providers

    def __iter__(self) -> Iterator[Provider]:
        return iter(list(self._providers.values()))


_default: Registry | None = None
_lock = threading.Lock()


def default_registry() -> Registry:
    """The registry of the providers that ship with the operator (built once)."""
    global _default
    with _lock:
        if _default is None:
            from destination_operator.providers import azure, gcs, oss, s3, webhook

            registry = Registry()
            registry.register(s3.S3CompatibleProvider())
            registry.register(s3.AmazonS3Provider())
            registry.register(s3.OracleCloudStorageProvider())
            registry.register(azure.AzureBlobStorageProvider())
            registry.register(webhook.WebhookProvider())
            registry.register(oss.AlibabaOSSProvider())
            registry.register(gcs.GoogleCloudStorageProvider())
            _default = registry
        return _default


def registry_for(
    *,
    aws_s3_endpoint: str | None = None,
    gcp_storage_endpoint: str | None = None,
    azure_blob_endpoint: str | None = None,
    azure_blob_ca_bundle: str | None = None,
) -> Registry:
    """The shipped providers, with the storage endpoints the operator's settings name (tests,
    private endpoints, sovereign clouds; never a Destination's): AmazonS3 sent to
    `aws_s3_endpoint`, GoogleCloudStorage's JSON API to `gcp_storage_endpoint`, and
    AzureBlobStorage without an endpoint of its own to `azure_blob_endpoint` (with
    `{account}`), trusting `azure_blob_ca_bundle` there. The guard checks each like any."""
    if aws_s3_endpoint is None and gcp_storage_endpoint is None and azure_blob_endpoint is None:
        return default_registry()
    from destination_operator.providers import azure, gcs, s3

    registry = Registry()
    for provider in default_registry():
        if provider.type == DestinationType.AmazonS3 and aws_s3_endpoint:
            provider = s3.AmazonS3Provider(endpoint_override=aws_s3_endpoint)
        elif provider.type == DestinationType.GoogleCloudStorage and gcp_storage_endpoint:
            provider = gcs.GoogleCloudStorageProvider(api_endpoint=gcp_storage_endpoint)
        elif provider.type == DestinationType.AzureBlobStorage and azure_blob_endpoint:
            provider = azure.AzureBlobStorageProvider(
                blob_endpoint=azure_blob_endpoint, blob_ca_bundle=azure_blob_ca_bundle
            )
        registry.register(provider)
    return registry


def credential_keys() -> frozenset[str]:
    """Every Secret key any shipped provider reads (the linter warns when they are inline)."""
    return frozenset().union(*(provider.secret_keys.names() for provider in default_registry()))
