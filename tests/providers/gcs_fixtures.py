"""Servers for the GCS provider tests: the checking GCS server, and one that trickles answers.

Loaded by `pytest_plugins` in the GCS test module. The GCS server is
fake-gcs-server (built once into the cache by hack/build-fake-gcs.sh) behind
hack/gcsserver.py's token endpoint and token check; the HMAC path uses the
S3 server of tests/server_fixtures.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slowservers import TrickleServer

from gcsserver import GcsServer


@pytest.fixture(scope="session")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsServer]:
    """fake-gcs-server behind a token endpoint and a token check, in a child process."""
    with GcsServer(tmp_path_factory.mktemp("gcs")) as server:
        yield server


@pytest.fixture
def gcs_trickle_server() -> Iterator[TrickleServer]:
    """Reads an HTTP request, then answers one byte every 0.3 s (no read ever times out)."""
    server = TrickleServer(delay=0.3)
    try:
        yield server
    finally:
        server.close()
