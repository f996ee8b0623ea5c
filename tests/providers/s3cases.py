"""Helpers for the S3 provider tests: specs as users write them, Secrets from the server's keys."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from destination_operator.api.spec import DestinationSpec, parse_spec
from destination_operator.providers.registry import Registry
from destination_operator.providers.s3 import AmazonS3Provider, OracleCloudStorageProvider


def s3_spec(
    endpoint: str,
    bucket: str,
    *,
    prefix: str = "probes/",
    mode: str = "WriteDelete",
    timeout: str = "5s",
    secret: str = "creds",
) -> DestinationSpec:
    """An S3Compatible spec as a user would write it (Development: http allowed)."""
    return parse_spec(
        {
            "type": "S3Compatible",
            "environment": "Development",
            "s3Compatible": {"endpoint": endpoint, "bucket": bucket, "forcePathStyle": True},
            "pathPrefix": prefix,
            "credentials": {"secretRef": {"name": secret}},
            "verification": {"mode": mode, "timeout": timeout},
        }
    )


def as_secret(pair: Any) -> dict[str, bytes]:
    """A KeyPair (from the S3 server) as decoded Secret data."""
    data: dict[str, bytes] = pair.secret_data()
    return data


def amazon_s3_spec(
    bucket: str,
    *,
    region: str = "us-east-1",
    server_side_encryption: str | None = None,
    prefix: str = "probes/",
    mode: str = "WriteDelete",
    timeout: str = "5s",
    secret: str = "creds",
) -> DestinationSpec:
    """An AmazonS3 spec as a user would write it (no endpoint: the region implies it)."""
    member: dict[str, Any] = {"bucket": bucket, "region": region}
    if server_side_encryption is not None:
        member["serverSideEncryption"] = server_side_encryption
    return parse_spec(
        {
            "type": "AmazonS3",
            "amazonS3": member,
            "pathPrefix": prefix,
            "credentials": {"secretRef": {"name": secret}},
            "verification": {"mode": mode, "timeout": timeout},
        }
    )


def oracle_spec(
    bucket: str,
    *,
    namespace: str = "tenancy-ns",
    region: str = "us-ashburn-1",
    prefix: str = "probes/",
    mode: str = "WriteDelete",
    timeout: str = "5s",
    secret: str = "creds",
) -> DestinationSpec:
    """An OracleCloudStorage spec as a user would write it (namespace + region, no endpoint)."""
    return parse_spec(
        {
            "type": "OracleCloudStorage",
            "oracleCloudStorage": {"bucket": bucket, "namespace": namespace, "region": region},
            "pathPrefix": prefix,
            "credentials": {"secretRef": {"name": secret}},
            "verification": {"mode": mode, "timeout": timeout},
        }
    )


def overridden_registry(endpoint: str) -> Registry:
    """AmazonS3 and OracleCloudStorage providers that send every request to `endpoint`."""
    registry = Registry()
    registry.register(AmazonS3Provider(endpoint_override=endpoint))
    registry.register(OracleCloudStorageProvider(endpoint_override=endpoint))
    return registry


class HeaderRecorder:
    """An HTTP server on loopback that answers PutObject (200) and DeleteObject (204) and
    records each request's method, path and headers: to see a request's shape on the wire.
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, status: int) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                recorder.requests.append((self.command, self.path, headers))
                self.send_response(status)
                self.send_header("ETag", '"0"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_PUT(self) -> None:
                self._answer(200)

            def do_DELETE(self) -> None:
                self._answer(204)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reads `requests`."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()
