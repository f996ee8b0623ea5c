"""manifests/samples/ against a real API server: applying a sample never touches a Secret,
and the `kubectl create secret` command each sample shows makes a Secret its provider reads.
"""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

import dst
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes import client

import canaries
import samples
from destination_operator.api.spec import parse_spec
from destination_operator.errors import SecretKeyMissingError
from destination_operator.providers.registry import default_registry
from harness import Cluster

pytestmark = pytest.mark.cluster


def service_account_key() -> str:
    """A service account key file as Google issues it, with a fresh RSA key."""
    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "acme-reports",
            "private_key_id": secrets.token_hex(20),
            "private_key": pem,
            "client_email": "writer@acme-reports.iam.gserviceaccount.com",
            "client_id": str(secrets.randbelow(10**21)),
            "token_uri": "https://oauth2.googleapis.com/token",
        },
        indent=2,
    )


def real_looking(key: str) -> str:
    """A value shaped like the real thing for each Secret key the samples use."""
    signature = base64.b64encode(secrets.token_bytes(32)).decode()
    values = {
        "accessKeyId": "AKIA" + secrets.token_hex(8).upper(),
        "secretAccessKey": secrets.token_urlsafe(30),
        "accessKeySecret": secrets.token_urlsafe(22),
        "sasToken": "sv=2025-01-05&spr=https&se=2030-01-31T00%3A00%3A00Z&sr=c&sp=cwd&sig="
        + quote(signature, safe=""),
        "verificationToken": secrets.token_urlsafe(32),
        "serviceAccountJson": service_account_key(),
    }
    return values[key]


def read_secret(cluster: Cluster, namespace: str, name: str) -> client.V1Secret:
    return client.CoreV1Api(cluster.api_client()).read_namespaced_secret(name, namespace)


def secret_names(cluster: Cluster, namespace: str) -> set[str]:
    listed = client.CoreV1Api(cluster.api_client()).list_namespaced_secret(namespace)
    return {item.metadata.name for item in listed.items}


def decoded(secret: client.V1Secret) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}


@pytest.mark.parametrize("server_side", [False, True], ids=["client-side", "server-side"])
def test_applying_the_samples_leaves_existing_secrets_alone(
    cluster: Cluster, destination_crd: str, namespace: str, server_side: bool
) -> None:
    """The real Secrets the samples name are there first; `kubectl apply` of the whole
    folder, twice, creates the Destinations and changes no Secret, not even its metadata."""
    core = client.CoreV1Api(cluster.api_client())
    before: dict[str, client.V1Secret] = {}
    for path in samples.SAMPLES:
        command = samples.secret_command(path)
        body = dst.secret(command.name, {key: real_looking(key) for key in command.keys})
        before[command.name] = core.create_namespaced_secret(namespace, body)
    assert len(before) == len(samples.SAMPLES) == 7
    names = secret_names(cluster, namespace)

    mode = ["--server-side"] if server_side else []
    for _ in range(2):  # a first apply creates the Destinations, a second one updates them
        cluster.kubectl("apply", *mode, "-n", namespace, "-R", "-f", str(samples.FOLDER))

    assert secret_names(cluster, namespace) == names
    for name, old in before.items():
        now = read_secret(cluster, namespace, name)
        assert now.metadata.resource_version == old.metadata.resource_version, name
        assert now.data == old.data, name
        assert now.metadata.annotations == old.metadata.annotations, name
        assert now.metadata.managed_fields == old.metadata.managed_fields, name
    stored = json.loads(cluster.kubectl("get", "dst", "-n", namespace, "-o", "json").stdout)
    assert sorted(d["spec"]["credentials"]["secretRef"]["name"] for d in stored["items"]) == sorted(
        before
    )


def test_applying_a_sample_creates_no_secret(
    cluster: Cluster, destination_crd: str, namespace: str
) -> None:
    """Without the Secret, the sample makes the Destination alone: nothing to clean up."""
    names = secret_names(cluster, namespace)
    for path in samples.SAMPLES:
        cluster.kubectl("apply", "-n", namespace, "-f", str(path))
    assert secret_names(cluster, namespace) == names
    listed = cluster.kubectl("get", "dst", "-n", namespace, "-o", "name").stdout.split()
    assert len(listed) == len(samples.SAMPLES)


@pytest.mark.parametrize("path", samples.SAMPLES, ids=lambda p: p.stem.rsplit("_", 1)[-1])
def test_the_samples_secret_command_makes_a_secret_its_provider_reads(
    cluster: Cluster, destination_crd: str, namespace: str, path: Path, tmp_path: Path
) -> None:
    """The comment's own command, placeholders filled in, run by the real kubectl: the
    Secret has exactly the command's keys, the provider loads credentials from it, and
    without any one of those keys the provider names that key as missing."""
    command = samples.secret_command(path)
    literals = {key: real_looking(key) for key in command.literals}
    files: dict[str, Path] = {}
    contents: dict[str, str] = {}
    for key, name in command.files.items():
        contents[key] = real_looking(key)
        files[key] = tmp_path / name
        files[key].write_text(contents[key], encoding="utf-8")
    canaries.register(*literals.values(), *contents.values())

    cluster.kubectl(*command.argv(namespace, literals, files))

    data = decoded(read_secret(cluster, namespace, command.name))
    assert data == literals | contents
    body: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    spec = parse_spec(body["spec"])
    provider = default_registry().get(spec.type)
    assert provider.load_credentials(data) is not None
    for key in data:
        with pytest.raises(SecretKeyMissingError):
            provider.load_credentials({k: v for k, v in data.items() if k != key})

    cluster.kubectl("apply", "-n", namespace, "-f", str(path))
    stored = dst.get(cluster, namespace, body["metadata"]["name"])
    assert stored["spec"]["credentials"]["secretRef"]["name"] == command.name
