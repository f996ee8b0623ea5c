"""The endpoints the operator's settings name: Cloud Storage's JSON API and an Azure blob
endpoint template (`registry_for`), each listed for the endpoint guard; the CA of
`identity_ca_bundle` trusted at the operator's blob endpoint only, never at one a
Destination's author chose (Azurite over HTTPS with a certificate of its own), and at
Google's token services (the local STS and IAM Credentials, over HTTPS here)."""

from __future__ import annotations

import datetime
import ssl
import uuid
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from googlests import GoogleServer, principal
from localissuer import LocalIssuer

from azurite import Azurite
from certs import issue
from destination_operator.api.spec import DestinationSpec, DestinationType, parse_spec
from destination_operator.api.status import Reason
from destination_operator.errors import IdentityExchangeFailedError
from destination_operator.identity.clouds import clouds_for
from destination_operator.kube.serviceaccounts import ServiceAccountView
from destination_operator.probe.verify import verify
from destination_operator.providers.registry import default_registry, registry_for
from destination_operator.settings import OperatorSettings


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
    cert, key = issue("127.0.0.1", hosts=["localhost", "127.0.0.1"], ca=True).write(
        tmp_path / "tls"
    )
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


def test_the_operators_ca_bundle_checks_googles_token_services(tmp_path: Path) -> None:
    cert, key = issue("127.0.0.1", hosts=["localhost", "127.0.0.1"], ca=True).write(
        tmp_path / "tls"
    )
    server = GoogleServer()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.url = server.url.replace("http://", "https://")
    local = LocalIssuer()
    with server:
        provider = server.google.add_provider("cluster-pool", "kube", local.issuer)
        writer = "writer@project.iam.gserviceaccount.com"
        subject = "system:serviceaccount:destinations:operator"
        server.google.bind_workload_identity_user(writer, principal("cluster-pool", subject))

        def google(ca_bundle: str | None) -> Any:
            settings = OperatorSettings(
                gcp_sts_endpoint=server.token_url,
                gcp_iamcredentials_endpoint=server.url,
                gcp_workload_identity_provider=provider.removeprefix("//iam.googleapis.com/"),
                identity_ca_bundle=ca_bundle,
            )
            return clouds_for(settings)[DestinationType.GoogleCloudStorage]

        cloud = google(str(cert))
        annotations = MappingProxyType({"iam.gke.io/gcp-service-account": writer})
        target = cloud.target(ServiceAccountView("destinations", "operator", "uid", annotations))
        token = local.token("destinations", "operator", audience=target.audience, seconds=600)
        assert cloud.exchange(token, target, 10).token
        assert server.google.count("/v1/token") == server.google.count(":generate") == 1
        with pytest.raises(IdentityExchangeFailedError) as refused:
            google(None).exchange(token, target, 10)  # the system's CAs: not this one
        assert "unreachable" in refused.value.message, refused.value.message
        assert server.google.count("/v1/token") == 1  # refused in the handshake
