"""A probe reads at most `MAX_ANSWER_BYTES` of any answer, as sent and once decompressed.

urllib3 itself (the client every SDK's HTTP goes through) against a real
server on loopback, under a `ProbeControl` as a probe runs. Outside a control
nothing changes: the operator's own API calls are not bounded by it.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
import urllib3

from destination_operator.api.status import Reason
from destination_operator.probe.control import ProbeControl
from destination_operator.probe.hooks import MAX_ANSWER_BYTES

BIG = b"a." * 500_000  # 1 MB


class _Answers(BaseHTTPRequestHandler):
    """GET /<case>: the answer that case names."""

    protocol_version = "HTTP/1.1"
    bomb: ClassVar[bytes] = gzip.compress(b"\0" * (4 * MAX_ANSWER_BYTES), compresslevel=9)

    def do_GET(self) -> None:
        case = self.path.strip("/")
        if case == "long-body":
            self._answer(403, "Forbidden", BIG)
        elif case == "long-phrase":
            self._answer(200, "OK " + "eyJ-" * 16_000, b"")
        elif case == "chunked":
            self.send_response(403)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(BIG), 65536):
                chunk = BIG[start : start + 65536]
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif case == "bomb":
            self._answer(403, "Forbidden", self.bomb, ("Content-Encoding", "gzip"))
        else:
            self._answer(200, "OK", b"<ok/>")

    def _answer(self, status: int, phrase: str, body: bytes, *header: tuple[str, str]) -> None:
        self.send_response_only(status, phrase)
        for name, value in header:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _get(url: str, *, stream: bool = False) -> urllib3.BaseHTTPResponse:
    pool = urllib3.PoolManager(retries=False)
    if stream:
        response = pool.request("GET", url, preload_content=False)
        b"".join(response.stream(65536))
        return response
    return pool.request("GET", url)


@pytest.mark.parametrize(
    ("case", "stream"), [("long-body", False), ("chunked", True), ("bomb", False)]
)
def test_an_answer_past_the_bound_ends_the_probe(server: str, case: str, stream: bool) -> None:
    control = ProbeControl(5)
    started = time.monotonic()
    with control, pytest.raises(urllib3.exceptions.HTTPError):
        _get(f"{server}/{case}", stream=stream)
    took = time.monotonic() - started
    error = control.end_error()
    assert error is not None and error.reason == Reason.ProbeFailed
    assert error.message == (
        "the endpoint's answer (HTTP 403) is longer than 128 KiB; the probe read no further"
    )
    assert took < 1.0


def test_a_long_reason_phrase_within_the_bound_is_read(server: str) -> None:
    with ProbeControl(5) as control:
        response = _get(f"{server}/long-phrase")
    assert response.status == 200 and len(response.reason or "") == 3 + 64_000
    assert control.end_error() is None


def test_an_ordinary_answer_is_untouched(server: str) -> None:
    with ProbeControl(5) as control:
        response = _get(f"{server}/small")
    assert response.data == b"<ok/>" and control.end_error() is None


def test_outside_a_probe_nothing_is_bounded(server: str) -> None:
    with ProbeControl(5):  # installs the hooks; the read below is in no probe
        pass
    assert _get(f"{server}/long-body").data == BIG
