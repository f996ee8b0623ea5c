"""Redirects never lead a probe past the endpoint guard.

Each provider with a user-chosen endpoint is pointed at a server that answers
every request with a redirect to a second server (the trap). No provider may
follow it: the trap must see no connection. Below the providers, the probe
control refuses connections to hosts the guard did not check when they
resolve to private addresses and the operator does not allow those.
"""

from __future__ import annotations

import base64
import datetime
import socket
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import urllib3

from destination_operator.api.spec import parse_spec
from destination_operator.probe.control import ProbeControl
from destination_operator.probe.verify import verify

NOW = datetime.datetime(2026, 11, 24, 7, 0, tzinfo=datetime.UTC)


class Trap:
    """A listener that counts connections and answers none."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


def _redirector(location: str) -> ThreadingHTTPServer:
    class Redirect(BaseHTTPRequestHandler):
        def _any(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(307)
            self.send_header("Location", location + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def trap() -> Iterator[Trap]:
    found = Trap()
    yield found
    found.close()


@pytest.fixture
def redirector(trap: Trap) -> Iterator[str]:
    server = _redirector(f"http://127.0.0.1:{trap.port}")
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def _spec(kind: str, endpoint: str) -> dict[str, Any]:
    members = {
        "S3Compatible": {
            "s3Compatible": {"endpoint": endpoint, "bucket": "probe-bucket", "forcePathStyle": True}
        },
        "AlibabaOSS": {
            "alibabaOSS": {
                "bucket": "probe-bucket",
                "region": "oss-cn-hangzhou",
                "endpoint": endpoint,
            }
        },
        "AzureBlobStorage": {
            "azureBlobStorage": {
                "storageAccountName": "probeaccount",
                "containerName": "probes",
                "endpoint": f"{endpoint}/probeaccount",
            }
        },
        "Webhook": {"webhook": {"url": f"{endpoint}/hook"}},
    }
    return {
        "type": kind,
        "environment": "Development",
        **members[kind],
        "credentials": {"secretRef": {"name": "creds"}},
        "verification": {"timeout": "3s"},
    }


SECRETS = {
    "S3Compatible": {"accessKeyId": b"AKIAREDIRECT", "secretAccessKey": b"redirect-secret-key"},
    "AlibabaOSS": {"accessKeyId": b"LTAIredirect", "accessKeySecret": b"redirect-secret-key"},
    "AzureBlobStorage": {"accountKey": base64.b64encode(b"redirect-account-key-0123456789")},
    "Webhook": {"verificationToken": b"redirect-token-0123456789"},
}


@pytest.mark.parametrize("kind", list(SECRETS))
def test_no_provider_follows_a_redirect(kind: str, redirector: str, trap: Trap) -> None:
    outcome = verify(
        parse_spec(_spec(kind, redirector)),
        SECRETS[kind],
        secret_uid="8e0b9f3a-5c1d-4e2f-9a7b-6c5d4e3f2a1b",
        object_key=f"probes/{uuid.uuid4()}.txt",
        allow_private=True,  # the redirector is on loopback
        now=NOW,
    )
    assert not outcome.verified, outcome
    assert trap.accepted == 0, f"{kind} followed the redirect: {outcome.message}"


def _get_under(control: ProbeControl, url: str) -> int:
    with control:
        pool = urllib3.PoolManager(retries=False)
        return pool.request("GET", url, timeout=2, redirect=False).status


def test_an_unchecked_host_may_not_reach_a_private_address_when_they_are_refused(
    redirector: str,
) -> None:
    port = redirector.rsplit(":", 1)[1]
    url = f"http://localhost:{port}/x"  # a name the guard never checked (as after a redirect)
    refusing = ProbeControl(5, refuse_private=True)
    with pytest.raises(urllib3.exceptions.HTTPError) as info:
        _get_under(refusing, url)
    assert "loopback address" in str(info.value)
    assert _get_under(ProbeControl(5), url) == 307  # allowed: it connects
