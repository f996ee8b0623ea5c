"""The Azure Blob Storage block (Blob Storage and Data Lake Storage Gen2)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import Field

from ..rules import (
    AnyRule,
    Checks,
    RuleModel,
    endpoint_rules,
    immutable,
    immutable_optional,
    pattern_rule,
)

__all__ = [
    "AzureBlobStorage",
    "AzureProduct",
]


class AzureProduct(StrEnum):
    """The product that reads the container."""

    Databricks = "Databricks"


class AzureBlobStorage(RuleModel):
    """A container in an Azure Storage account (Blob Storage or Data Lake Storage Gen2). The Secret
    (spec.credentials.secretRef.name) must hold one of accountKey, sasToken or connectionString.
    """

    storage_account_name: Annotated[
        str,
        Field(
            min_length=3,
            max_length=24,
            description="Storage account name: 3-24 lowercase letters and digits. Immutable.",
        ),
        Checks(
            pattern_rule(
                "spec.azureBlobStorage.storageAccountName",
                "^[a-z0-9]+$",
                "must use only lowercase letters and digits",
            ),
            immutable("spec.azureBlobStorage.storageAccountName"),
        ),
    ]
    container_name: Annotated[
        str,
        Field(
            min_length=3,
            max_length=63,
            description=(
                "Name of an existing container: 3-63 lowercase letters, digits and hyphens, "
                "starting and ending with a letter or digit, no two hyphens in a row. Immutable."
            ),
        ),
        Checks(
            pattern_rule(
                "spec.azureBlobStorage.containerName",
                "^[a-z0-9]+(-[a-z0-9]+)*$",
                "must use only lowercase letters, digits and single hyphens, "
                "and start and end with a letter or digit",
            ),
            immutable("spec.azureBlobStorage.containerName"),
        ),
    ]
    endpoint: (
        Annotated[
            str,
            Field(
                max_length=512,
                description=(
                    "Blob service URL, for sovereign clouds and emulators (such as "
                    "https://<account>.blob.core.chinacloudapi.cn, or "
                    "http://127.0.0.1:10000/<account> "
                    "for Azurite in Development). Unset: https://<account>.blob.core.windows.net. "
                    "Immutable."
                ),
            ),
            Checks(*endpoint_rules("spec.azureBlobStorage.endpoint")),
        ]
        | None
    ) = None
    product: AzureProduct | None = Field(
        default=None,
        strict=False,
        description="Set to Databricks when a Databricks workspace reads the container.",
    )

    cel_rules: ClassVar[tuple[AnyRule, ...]] = (
        immutable_optional("spec.azureBlobStorage.endpoint", "endpoint", "endpoint"),
    )

    def location(self) -> str:
        """Where data goes: `<blob endpoint>/<container>`."""
        base = self.endpoint or f"https://{self.storage_account_name}.blob.core.windows.net"
        return f"{base.rstrip('/')}/{self.container_name}"
