"""Fixtures for the AlibabaOSS tests (a pytest plugin: `pytest_plugins = ["oss_fixtures"]`).

The OSS server (hack/ossserver.py) runs once per test module, in a thread on
loopback; probes are told apart by their object keys. Every user's secret
starts with `CANARY`, so a test can show that no secret reaches a message or
a log line. A second server speaks HTTPS with a certificate from a CA made
for it, for the provider's CA-bundle parameter.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from slowservers import TrickleServer

from ossserver import OSSServer, make_users

CANARY = "canary-SECRET-never-show-me-0a55e1f4"
"""Starts every secret the OSS servers hand out."""


@pytest.fixture(scope="session")
def oss_canary() -> str:
    """`CANARY`, for test modules (which load this one as a plugin, not by import)."""
    return CANARY


@pytest.fixture(scope="module")
def oss_server() -> Iterator[OSSServer]:
    """The OSS server over HTTP, region cn-hangzhou, users admin, writer and no-access;
    its bucket `beijing-bucket` lives in cn-beijing."""
    users = make_users(secret_marker=CANARY)
    with OSSServer(users=users, elsewhere={"beijing-bucket": "cn-beijing"}) as server:
        yield server


@dataclass(frozen=True)
class TLSServer:
    server: OSSServer
    ca_file: Path


def _certificate_chain(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for 127.0.0.1 signed by it: (ca, cert, key) PEM files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "oss test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = folder / "ca.crt", folder / "tls.crt", folder / "tls.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


@pytest.fixture(scope="module")
def oss_tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServer]:
    """The OSS server over HTTPS, its certificate signed by a CA only this fixture knows."""
    ca_file, cert_file, key_file = _certificate_chain(tmp_path_factory.mktemp("oss-tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    with OSSServer(users=make_users(secret_marker=CANARY), tls=context) as server:
        yield TLSServer(server, ca_file)


@pytest.fixture
def trickle_server() -> Iterator[TrickleServer]:
    """Reads the request, then answers one byte every 0.8 s."""
    server = TrickleServer(delay=0.8)
    try:
        yield server
    finally:
        server.close()
