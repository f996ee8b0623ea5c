"""Fixtures for the AlibabaOSS tests (a pytest plugin: `pytest_plugins = ["oss_fixtures"]`).

The OSS server (hack/ossserver.py) runs once per test module, in a thread on
loopback; probes are told apart by their object keys. Every user's secret
starts with `CANARY`, so a test can show that no secret reaches a message or
a log line. A second server speaks HTTPS with a certificate from a CA made
for it, for the provider's CA-bundle parameter.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from slowservers import TrickleServer
from webhookserver import CertificateAuthority

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


@pytest.fixture(scope="module")
def oss_tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServer]:
    """The OSS server over HTTPS, its certificate signed by a CA only this fixture knows."""
    authority = CertificateAuthority(tmp_path_factory.mktemp("oss-tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(authority.cert_file, authority.key_file)
    with OSSServer(users=make_users(secret_marker=CANARY), tls=context) as server:
        yield TLSServer(server, authority.ca_file)


@pytest.fixture
def trickle_server() -> Iterator[TrickleServer]:
    """Reads the request, then answers one byte every 0.8 s."""
    server = TrickleServer(delay=0.8)
    try:
        yield server
    finally:
        server.close()
