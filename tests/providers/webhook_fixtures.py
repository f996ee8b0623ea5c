"""Fixtures for the Webhook provider tests (a pytest plugin: `pytest_plugins = [...]`).

The receiver runs once per test module; each probe's requests are told apart
by the probe key in their body. The provider that trusts the receiver's CA is
given it through its CA-bundle parameter, in a registry of the test's own: the
certificate is checked as in production, only against another trust store.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slowservers import TrickleServer
from webhookserver import WebhookReceiver

from destination_operator.providers.registry import Registry
from destination_operator.providers.webhook import WebhookProvider


@pytest.fixture(scope="module")
def webhook_receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookReceiver]:
    """The HTTPS receiver on loopback, with its certificate from a CA made for it."""
    receiver = WebhookReceiver(tmp_path_factory.mktemp("webhook"))
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.fixture(scope="module")
def webhook_registry(webhook_receiver: WebhookReceiver) -> Registry:
    """A registry whose Webhook provider trusts the receiver's CA (and no other)."""
    registry = Registry()
    registry.register(WebhookProvider(ca_bundle=str(webhook_receiver.ca_file)))
    return registry


@pytest.fixture(scope="module")
def system_trust_registry() -> Registry:
    """A registry whose Webhook provider trusts the system's CAs, as the operator's does."""
    registry = Registry()
    registry.register(WebhookProvider())
    return registry


@pytest.fixture
def stuck_handshake_server() -> Iterator[TrickleServer]:
    """Accepts, then sends the start of a TLS ServerHello a byte at a time."""
    server = TrickleServer(delay=0.4, tls=True)
    try:
        yield server
    finally:
        server.close()
