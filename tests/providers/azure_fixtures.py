"""Fixtures for the Azure provider tests: Azurite on loopback, and a server that trickles.

Loaded by `pytest_plugins` in the Azure test module. Azurite (hack/azurite.py)
is installed from npm into the cache on first use and started once per
session with an account of its own; if it cannot be had, the tests using it
fail with the reason, and are never skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slowservers import TrickleServer

from azurite import Azurite, AzuriteError


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite's blob service: account `probeaccount` (its generated key is the only one
    accepted) with container `destinations`."""
    server = Azurite(tmp_path_factory.mktemp("azurite"))
    try:
        server.start()
    except AzuriteError as err:
        pytest.fail(f"Azurite could not be started: {err}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def trickle_server() -> Iterator[TrickleServer]:
    """Reads the request, then answers one byte every 0.4 s: no socket timeout ever trips."""
    server = TrickleServer(delay=0.4)
    try:
        yield server
    finally:
        server.close()
