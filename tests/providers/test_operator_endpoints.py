"""The storage endpoints the operator's settings name (`registry_for`): Cloud Storage's JSON
API and an Azure blob endpoint template, each listed for the endpoint guard; the CA of
`identity_ca_bundle` trusted at the operator's blob endpoint only, never at one a
Destination's author chose. Against Azurite over HTTPS with a certificate of its own."""

from __future__ import annotations

import datetime
import uuid
from pathlib import Path
from typing import Any

from entra import self_signed

from azurite import Azurite
from destination_operator.api.spec import DestinationSpec, parse_spec
from destination_operator.api.status import Reason
from destination_operator.probe.verify import verify
from destination_operator.providers.registry import default_registry, registry_for


def blob_spec(endpoint: str | None = None) -> DestinationSpec:
    member: dict[str, Any] = {"storageAccountName": "probeaccount", "containerName": "destinations"}
    if endpoint:
        member["endpoint"] = endpoint
    return parse_spec(
        {
            "type": "AzureBlobStorage",
            "azureBlobStorage": member,
            "pathPrefix": "probes/",
            "credentials": {"secretRef": {"name": "creds"}},
            "verification": {"timeout": "10s"},
        }
    )


def test_without_the_settings_the_shipped_providers_serve() -> None:
    assert registry_for() is default_registry()
    assert default_registry().get("AzureBlobStorage").endpoints(blob_spec()) == []


def test_the_operators_cloud_storage_endpoint_is_guarded() -> None:
    registry = registry_for(gcp_storage_endpoint="http://10.0.0.1:4443")
    spec = parse_spec(
        {
            "type": "GoogleCloudStorage",
            "googleCloudStorage": {"bucket": "destinations"},
            "credentials": {"operatorIdentity": {}},
        }
    )
    assert registry.get("GoogleCloudStorage").endpoints(spec) == ["http://10.0.0.1:4443"]
    # the others as shipped
    assert registry.get("AzureBlobStorage").endpoints(blob_spec()) == []


def test_the_operators_blob_endpoint_is_guarded_and_its_ca_trusted_there_only(
    tmp_path: Path,
) -> None:
    cert, key = self_signed(tmp_path / "tls")
    with Azurite(tmp_path / "azurite", oauth_tls=(cert, key)) as azurite:
        template = azurite.endpoint.rsplit("/", 1)[0] + "/{account}"
        registry = registry_for(azure_blob_endpoint=template, azure_blob_ca_bundle=str(cert))
        provider = registry.get("AzureBlobStorage")
        assert provider.endpoints(blob_spec()) == [azurite.endpoint]

        def probe(spec: DestinationSpec) -> Any:
            return verify(
                spec,
                {"accountKey": azurite.key.encode()},
                secret_uid="uid",
                object_key=f"probes/{uuid.uuid4()}.txt",
                allow_private=True,
                now=datetime.datetime.now(datetime.UTC),
                registry=registry,
            )

        own = probe(blob_spec())
        assert own.reason == Reason.ProbeSucceeded, own
        # The same server named by the Destination: the operator's CA is not lent to it.
        chosen = probe(blob_spec(azurite.endpoint))
        assert chosen.reason == Reason.TLSError, chosen
        assert "certificate" in chosen.message
