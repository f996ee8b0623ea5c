"""probecontrol: the watchdog, the registry of running probes, pinning, bounded DNS.

Real sockets on loopback and urllib3 itself; no SDK is involved.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import pytest
import urllib3
import urllib3.util.connection

from destination_operator.errors import ProbeTimeoutError
from destination_operator.probe import control as probecontrol
from destination_operator.probe import dnspool, hooks
from destination_operator.probe.control import ProbeControl

T = TypeVar("T")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback port that accepts connections (the kernel completes them) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    try:
        yield sock
    finally:
        sock.close()


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def connect(host: str, port: int, timeout: Any = None) -> socket.socket:
    """What urllib3 does to open a connection (through the hook once it is installed)."""
    return urllib3.util.connection.create_connection((host, port), timeout)


def in_thread(work: Callable[[], T], within: float = 10) -> tuple[T, float]:
    """Run `work` in a thread of its own; (its result, seconds it took)."""
    box: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            box.append(work())
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            failure.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=run)
    thread.start()
    thread.join(within)
    assert not thread.is_alive(), "the thread is still blocked"
    if failure:
        raise failure[0]
    return box[0], time.monotonic() - started


def never(host: str, port: int) -> Sequence[str]:
    raise AssertionError(f"{host} was resolved again")


# --- the hook ---------------------------------------------------------------------------------


def test_the_hook_is_installed_once_and_leaves_other_threads_alone(
    listener: socket.socket,
) -> None:
    hooks.install()
    hooked = urllib3.util.connection.create_connection
    hooks.install()
    assert urllib3.util.connection.create_connection is hooked
    assert hooked is hooks._create_connection
    # No control in this thread: the original function, the timeout as asked, nothing watched.
    sock = connect("127.0.0.1", port_of(listener), 7.5)
    with sock:
        assert sock.gettimeout() == 7.5
        assert hooks.current() is None


def test_under_a_control_the_socket_timeout_is_at_most_what_is_left(
    listener: socket.socket,
) -> None:
    def work() -> tuple[float | None, float | None]:
        with ProbeControl(1.5):
            with connect("127.0.0.1", port_of(listener), 30) as asked_more:
                first = asked_more.gettimeout()
            with connect("127.0.0.1", port_of(listener), None) as blocking:
                second = blocking.gettimeout()
        return first, second

    (first, second), _ = in_thread(work)
    assert first is not None and 1.0 < first <= 1.5
    assert second is not None and 1.0 < second <= 1.5


# --- the watchdog -----------------------------------------------------------------------------


def test_the_deadline_shuts_a_socket_blocked_in_recv(listener: socket.socket) -> None:
    def work() -> tuple[bytes, float]:
        with ProbeControl(0.5) as control:
            sock = connect("127.0.0.1", port_of(listener))
            sock.settimeout(None)  # as a careless SDK might: block for ever
            with sock:
                data = sock.recv(1)  # returns at the deadline: the watchdog shut the socket
            assert control.ended and not control.aborted
            return data, control.elapsed()

    (data, elapsed), took = in_thread(work, within=5)
    assert data == b""
    assert 0.45 <= elapsed < 0.7 and took < 1.0


def test_abort_from_another_thread_wakes_a_blocked_recv_at_once(
    listener: socket.socket,
) -> None:
    control = ProbeControl(60)
    connected = threading.Event()

    def work() -> bytes:
        with control:
            sock = connect("127.0.0.1", port_of(listener))
            sock.settimeout(None)
            connected.set()
            with sock:
                return sock.recv(1)

    box: list[bytes] = []
    thread = threading.Thread(target=lambda: box.append(work()))
    thread.start()
    assert connected.wait(5)
    time.sleep(0.1)
    aborted = time.monotonic()
    control.abort()
    thread.join(5)
    assert not thread.is_alive() and box == [b""]
    assert time.monotonic() - aborted < 0.2
    assert control.aborted and control.finished
    error = control.end_error()
    assert error is not None and "aborted" in error.message


def test_after_the_end_no_new_connection_is_opened(listener: socket.socket) -> None:
    def work() -> None:
        with ProbeControl(60) as control:
            control.abort()
            with pytest.raises(TimeoutError, match="aborted"):
                connect("127.0.0.1", port_of(listener))

    in_thread(work)


def test_one_watchdog_thread_serves_every_probe(listener: socket.socket) -> None:
    barrier = threading.Barrier(20)
    received: list[bytes] = []

    def work() -> None:
        with ProbeControl(0.5):
            sock = connect("127.0.0.1", port_of(listener))
            sock.settimeout(None)
            barrier.wait(5)
            with sock:
                received.append(sock.recv(1))

    threads = [threading.Thread(target=work) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert not any(thread.is_alive() for thread in threads)
    assert received == [b""] * 20
    names = [t.name for t in threading.enumerate() if t.name == "probe-watchdog"]
    assert names == ["probe-watchdog"]


def test_leaving_the_block_shuts_the_probes_sockets(listener: socket.socket) -> None:
    def work() -> socket.socket:
        with ProbeControl(60):
            return connect("127.0.0.1", port_of(listener))

    sock, _ = in_thread(work)
    with sock:  # a pooled connection left behind reads EOF: urllib3 drops it
        sock.settimeout(1)
        assert sock.recv(1) == b""


# --- the registry: running probes and stragglers ----------------------------------------------


def test_a_probe_running_past_its_end_is_a_straggler_until_it_returns() -> None:
    control = ProbeControl(60)
    inside, release = threading.Event(), threading.Event()

    def work() -> None:
        with control:
            inside.set()
            release.wait(5)  # busy elsewhere than on a socket: no shutdown reaches it

    thread = threading.Thread(target=work)
    thread.start()
    assert inside.wait(5)
    assert probecontrol.stragglers() == 0
    control.abort()  # as the engine does on shutdown
    assert probecontrol.stragglers() == 1
    assert not control.join(0.05)
    release.set()
    assert control.join(5)
    thread.join(5)
    assert probecontrol.stragglers() == 0


def test_a_probe_busy_past_its_deadline_is_a_straggler() -> None:
    def work() -> tuple[bool, int, str]:
        control = ProbeControl(0.05)
        assert control.deadline is None and control.remaining() == 0.05
        with control:
            assert control.deadline is not None and control.end_error() is None
            time.sleep(0.15)  # CPU, a lock: nothing the watchdog can shut
            error = control.end_error()
            assert error is not None
            return control.ended, probecontrol.stragglers(), error.message

    (ended, stragglers, message), _ = in_thread(work)
    assert ended and stragglers == 1 and message == "no complete answer within 0.05s"
    assert probecontrol.stragglers() == 0


def test_a_control_runs_one_probe_in_one_thread() -> None:
    control = ProbeControl(5)
    with control, pytest.raises(RuntimeError), ProbeControl(5):
        pass
    with pytest.raises(RuntimeError), control:
        pass
    with pytest.raises(ValueError):
        ProbeControl(0)


def test_abort_after_the_probe_finished_changes_nothing() -> None:
    control = ProbeControl(5)
    with control:
        pass
    control.abort()
    assert not control.aborted and control.end_error() is None


# --- pinning ----------------------------------------------------------------------------------


def test_a_pinned_host_connects_to_its_checked_address_without_resolving(
    listener: socket.socket,
) -> None:
    def work() -> str:
        with ProbeControl(5, resolve=never) as control:
            control.pin("Storage.Example.Test.", ["127.0.0.1"])
            # urllib3 connects to the name lower-cased and without the trailing dot
            with connect("storage.example.test", port_of(listener)) as sock:
                return str(sock.getpeername()[0])

    peer, _ = in_thread(work)
    assert peer == "127.0.0.1"


def test_a_pinned_host_tries_each_checked_address_in_turn(listener: socket.socket) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.3", 0))  # bound, not listening: refuses
        address = str(closed.getsockname()[0])

        def work() -> str:
            pins = {"two.example.test": [address, "127.0.0.1"]}
            with ProbeControl(5, pins=pins), connect("two.example.test", port_of(listener)) as s:
                return str(s.getpeername()[0])

        try:
            peer, _ = in_thread(work)
        except OSError:
            pytest.skip("127.0.0.3 is not a loopback address here")
    assert peer == "127.0.0.1"


def test_an_unpinned_host_is_resolved_by_the_controls_resolver(listener: socket.socket) -> None:
    asked: list[str] = []

    def resolver(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        return ["127.0.0.1"]

    def work() -> None:
        with ProbeControl(5, resolve=resolver), connect("aws.example.test", port_of(listener)):
            pass

    in_thread(work)
    assert asked == ["aws.example.test"]


def test_an_unpinned_host_never_reaches_cloud_metadata() -> None:
    """A redirect to an unchecked name is refused where the guard always refuses."""

    def metadata(host: str, port: int) -> Sequence[str]:
        return ["169.254.169.254"]

    def work() -> None:
        with ProbeControl(5, resolve=metadata), pytest.raises(ConnectionRefusedError) as info:
            connect("redirected.example.test", 80)
        assert "cloud metadata" in str(info.value)

    in_thread(work)


def test_a_literal_address_is_never_resolved(listener: socket.socket) -> None:
    def work() -> None:
        with ProbeControl(5, resolve=never), connect("127.0.0.1", port_of(listener)):
            pass

    in_thread(work)


@pytest.fixture
def dialled(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The socket addresses any socket tries to connect to (the connection itself is refused)."""
    calls: list[Any] = []

    def connect(sock: socket.socket, sockaddr: Any) -> None:
        calls.append(sockaddr)
        raise ConnectionRefusedError("the test refuses every connection")

    monkeypatch.setattr(socket.socket, "connect", connect)
    return calls


@pytest.mark.parametrize(
    "host", ["169.254.169.254", "[fd00:ec2::254]", "fd00:ec2::254", "168.63.129.16"]
)
def test_an_unpinned_literal_metadata_address_is_refused_without_connecting(
    host: str, dialled: list[Any]
) -> None:
    """A redirect to a literal address gets the same check as one to a name."""

    def work() -> str:
        with ProbeControl(5, resolve=never), pytest.raises(ConnectionRefusedError) as info:
            connect(host, 80)
        return str(info.value)

    message, _ = in_thread(work)
    assert "cloud metadata" in message and "always refused" in message
    assert dialled == []


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "10.1.2.3", "[fd12:3456::1]"])
def test_an_unpinned_literal_private_address_is_refused_when_they_are_refused(
    host: str, dialled: list[Any]
) -> None:
    def work() -> str:
        control = ProbeControl(5, refuse_private=True, resolve=never)
        with control, pytest.raises(ConnectionRefusedError) as info:
            connect(host, 80)
        return str(info.value)

    message, _ = in_thread(work)
    assert "unless it is started with private endpoints allowed" in message
    assert dialled == []


def test_an_unpinned_literal_loopback_address_connects_when_private_is_allowed(
    listener: socket.socket,
) -> None:
    def work(refuse_private: bool) -> None:
        control = ProbeControl(5, refuse_private=refuse_private, resolve=never)
        with control, connect("127.0.0.1", port_of(listener)):
            pass

    with pytest.raises(ConnectionRefusedError):
        in_thread(lambda: work(True))
    listener.settimeout(0.5)
    with pytest.raises(TimeoutError):  # refused before any connection was made
        listener.accept()
    in_thread(lambda: work(False))
    accepted, _ = listener.accept()  # the connection did happen
    accepted.close()


# --- bounded name resolution ------------------------------------------------------------------


def test_a_slow_resolver_is_given_up_on_at_the_deadline() -> None:
    released = threading.Event()

    def slow(host: str, port: int) -> Sequence[str]:
        released.wait(30)
        return ["127.0.0.1"]

    def work() -> str:
        with ProbeControl(0.5, resolve=slow) as control:
            with pytest.raises(ProbeTimeoutError) as info:
                control.resolve("slow.example.test", 443)
            # The SDK's connection to an unpinned host gives up at once, as urllib3 expects.
            with pytest.raises(TimeoutError):
                connect("slow.example.test", 443)
            return info.value.message

    try:
        message, took = in_thread(work, within=5)
    finally:
        released.set()
    assert message == "no DNS answer for host 'slow.example.test' within the probe's 0.5s"
    assert 0.45 <= took < 0.9
    error = ProbeTimeoutError(message)
    assert error.reason.value == "Timeout"


def test_abort_wakes_a_dns_wait() -> None:
    released = threading.Event()

    def slow(host: str, port: int) -> Sequence[str]:
        released.wait(30)
        return ["127.0.0.1"]

    control = ProbeControl(60, resolve=slow)
    waiting = threading.Event()

    def work() -> str:
        with control:
            waiting.set()
            try:
                control.resolve("slow.example.test", 443)
            except ProbeTimeoutError as err:
                return err.message
            return "answered"

    box: list[str] = []
    thread = threading.Thread(target=lambda: box.append(work()))
    thread.start()
    try:
        assert waiting.wait(5)
        time.sleep(0.1)
        aborted = time.monotonic()
        control.abort()
        thread.join(5)
        assert time.monotonic() - aborted < 0.2
        assert box and "aborted" in box[0]
    finally:
        released.set()


def test_resolver_errors_are_passed_on() -> None:
    def broken(host: str, port: int) -> Sequence[str]:
        raise socket.gaierror(-2, "Name or service not known")

    def work() -> None:
        with ProbeControl(5, resolve=broken) as control, pytest.raises(socket.gaierror):
            control.resolve("nowhere.example.test", 443)

    in_thread(work)


def test_the_system_resolver_keeps_its_order_without_repeats() -> None:
    addresses = dnspool.system_resolve("localhost", 80)
    assert addresses and len(addresses) == len(set(addresses))


# --- pooled connections stay with the probe that opened them ------------------------------------


class _KeepAlive(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections = 0

    def setup(self) -> None:
        type(self).connections += 1
        super().setup()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def keep_alive_server() -> Iterator[tuple[int, type[_KeepAlive]]]:
    handler = type("Handler", (_KeepAlive,), {"connections": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield int(server.server_address[1]), handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_pooled_connection_is_not_reused_by_another_probe(
    keep_alive_server: tuple[int, type[_KeepAlive]],
) -> None:
    port, handler = keep_alive_server
    pool = urllib3.HTTPConnectionPool("127.0.0.1", port, maxsize=1)

    def get() -> int:
        return int(pool.request("GET", "/").status)

    def probe(requests: int) -> None:
        with ProbeControl(5):
            for _ in range(requests):
                assert get() == 200

    in_thread(lambda: probe(2))  # within one probe the connection is reused
    assert handler.connections == 1
    in_thread(lambda: probe(1))  # the next probe opens its own, watched one
    assert handler.connections == 2
    # Without a control, pooling is urllib3's own: keep-alive across requests.
    assert get() == 200
    assert get() == 200
    assert handler.connections == 3
    pool.close()
