"""Servers on loopback that the provider and the cluster tests share: the S3 server, and
servers that misbehave (one that never answers, a closed port, an untrusted certificate)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

import canaries
from certs import issue
from loopback import LoopbackServer, SilentServer
from s3server import S3Server


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server on loopback, in a child process: signatures and IAM policies enforced.

    Its users' secret keys are canaries (`canaries`): the cluster tests store them in
    Secrets, so no status, Event or log line may ever hold one.
    """
    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        canaries.register(*(user.secret_access_key for user in server.users.values()))
        yield server


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    """A server that accepts connections and never answers; `accepted` counts them."""
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class UntrustedTLSServer(LoopbackServer):
    """Offers a TLS handshake with a certificate no client trusts."""

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert_file, key_file)
        super().__init__(backlog=8)

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(2)
        try:
            with self.context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (OSError, ssl.SSLError):
            conn.close()


@pytest.fixture
def untrusted_tls_server(tmp_path: Path) -> Iterator[int]:
    """A TLS server whose certificate no client trusts (self-signed, another host name)."""
    server = UntrustedTLSServer(*issue("untrusted.test", hosts=["untrusted.test"]).write(tmp_path))
    try:
        yield server.port
    finally:
        server.close()
