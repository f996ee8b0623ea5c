"""What the identity tests share to probe storage with a resolved identity: a Destination's
spec per cloud, and one verification with what `Identities.resolve` returned."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from destination_operator.api.spec import DestinationSpec, DestinationType, parse_spec
from destination_operator.identity.resolve import Resolved
from destination_operator.probe.verify import verify
from destination_operator.providers.registry import Registry

BLOCKS = {
    DestinationType.GoogleCloudStorage: ("googleCloudStorage", {"bucket": "destinations"}),
    DestinationType.AzureBlobStorage: (
        "azureBlobStorage",
        {"storageAccountName": "probeaccount", "containerName": "destinations"},
    ),
    DestinationType.AmazonS3: ("amazonS3", {"bucket": "destinations", "region": "us-east-1"}),
}


def spec(
    kind: DestinationType | str, credentials: dict[str, Any], **member: str
) -> DestinationSpec:
    """A `kind` Destination's spec with these credentials (its block's fields overridable)."""
    kind = DestinationType(kind)
    field, block = BLOCKS[kind]
    return parse_spec({"type": kind.value, field: {**block, **member}, "credentials": credentials})


def probe(
    destination: DestinationSpec,
    resolved: Resolved,
    registry: Registry,
    now: datetime.datetime | None = None,
) -> Any:
    """One verification of `destination` with the credentials `resolved` holds."""
    return verify(
        destination,
        None,
        secret_uid="",
        object_key=f"probes/{uuid.uuid4()}.txt",
        allow_private=True,
        now=now or datetime.datetime.now(datetime.UTC),
        registry=registry,
        issued=resolved.issued,
        credentials_fingerprint=resolved.fingerprint,
    )
