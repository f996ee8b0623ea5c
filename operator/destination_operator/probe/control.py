"""A hard deadline for a synchronous probe running in a worker thread.

Why this exists: an SDK's timeouts are per socket operation, not per call. A
server that answers one byte every 0.8 s never trips botocore's 2 s read
timeout, so a probe with `verification.timeout: 2s` was held for 48 s (and
then reported success), and a stalled TLS handshake or a slow DNS answer can
hold one too. Each held probe keeps one of the operator's few probe slots.

A `ProbeControl` is made by the caller with the probe's timeout and whether
private addresses are refused (`probe.verify.probe_control`), possibly before
the worker thread starts. The probe runs inside `with control:` in its
thread; the deadline counts from that moment. While it runs:

- every TCP connection urllib3 opens in that thread (and so botocore's, and
  those of the SDKs built on urllib3 or requests) goes through one
  process-wide hook on `urllib3.util.connection.create_connection`. Threads
  without an active control get the original function, unchanged. Under a
  control the hook
  - connects only to the addresses the endpoint guard checked for a pinned
    host (`pin()`); a pinned host is never resolved again, so a DNS answer
    that changes between the check and the connection (rebinding) cannot
    redirect the probe. Unpinned hosts (AWS's own endpoints, when the
    Destination names none, or wherever a redirect points) are resolved
    with the bounded resolver below (a literal address is its own answer),
    and every address is checked as the guard checks: one it always refuses
    (cloud metadata, link-local) is refused for them too, so a redirect
    cannot reach one; so are private and loopback addresses when
    `refuse_private` is set (the operator does not allow private endpoints);
  - sets the socket's timeout to at most what is left of the deadline;
  - registers the socket. At the deadline one watchdog thread, shared by
    the whole process (a heap of deadlines), calls `shutdown(SHUT_RDWR)` on
    every socket of the probe; `abort()` does the same from the thread that
    calls it. A blocked recv, send or TLS handshake returns at once;
- a pooled connection is handed out only to the control that opened it (a
  second, smaller hook on urllib3's pool check): the SDK's clients are
  shared, and a socket nobody watches would lift the deadline again;
- `resolve()` runs `getaddrinfo` (or an injected resolver) in a small
  bounded pool of daemon threads and waits only for what is left; no answer
  in time raises `ProbeTimeoutError` naming the host;
- every HTTP answer read in that thread is bounded: at most
  `MAX_ANSWER_BYTES` of its status line, headers and body as they arrive,
  and as many once decompressed (two small hooks, on `http.client`'s
  response and on urllib3's decoder). An SDK reads an error body whole and
  a hostile endpoint chooses its size; past the bound the probe ends as at
  its deadline, with reason `ProbeFailed`.

After the deadline, an abort or an answer too long, `end_error()` gives the
error to report (reason `Timeout`, or `ProbeFailed` for the answer), whatever
the SDK made of the shut socket.

The limit, honestly: Python cannot kill a thread. The guarantee is that
sockets opened under the control are shut, so SDK calls blocked on them
return, and that DNS waits are bounded; a probe thread that is busy
elsewhere (CPU, a lock, a socket the SDK opened in a thread of its own, a
proxy that resolves names itself) runs on until it returns. Such threads
are counted by `stragglers()` while they run past their control's end, and
a `getaddrinfo` stuck in the system resolver occupies a pool thread until it
returns (`resolutions_in_flight()`).
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import http.client
import ipaddress
import itertools
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import TracebackType
from typing import Any

from destination_operator.errors import DestinationError, ProbeFailedError, ProbeTimeoutError
from destination_operator.probe.endpoints import Resolver, classify_address

__all__ = [
    "DNS_THREADS",
    "MAX_ANSWER_BYTES",
    "ProbeControl",
    "current",
    "install",
    "resolutions_in_flight",
    "stragglers",
    "system_resolve",
]

logger = logging.getLogger(__name__)

DNS_THREADS = 8
"""Threads that run name resolutions for probes; more queue, each bounded by its deadline."""

MAX_ANSWER_BYTES = 128 * 1024
"""Bytes of one HTTP answer a probe reads (status line, headers and body), and again once
decompressed. A probe's answers are a few hundred bytes; a 64 KiB reason phrase still fits."""

_SocketKey = tuple[int, int]  # (st_dev, st_ino): a socket's identity while it is open


class _End(Enum):
    DEADLINE = "deadline"
    ABORT = "abort"
    OVERSIZE = "oversize"


def _host_key(host: str) -> str:
    """A host as urllib3 connects to it: no brackets, no trailing dot, lower case, ASCII."""
    key = host.strip("[]").rstrip(".").lower()
    if not key.isascii():
        with contextlib.suppress(UnicodeError):  # not a name urllib3 could connect to anyway
            key = key.encode("idna").decode("ascii")
    return key


def system_resolve(host: str, port: int) -> Sequence[str]:
    """The system resolver's addresses for `host`, in its order of preference, without repeats."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _socket_key(fd: int) -> _SocketKey:
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino)


class ProbeControl:
    """The deadline, the abort switch and the pinned addresses of one probe.

    Make it with the probe's timeout (in any thread); run the probe inside
    `with control:` in its worker thread, where the deadline starts. Single
    use. `abort()` may be called from any thread, before, during or after
    the probe, and never blocks.
    """

    def __init__(
        self,
        timeout_seconds: float,
        *,
        refuse_private: bool = False,
        resolve: Resolver | None = None,
        pins: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError(f"a probe's timeout must be positive, not {timeout_seconds!r}")
        self._timeout = float(timeout_seconds)
        self._resolver = resolve
        self._cond = threading.Condition()
        self._pins: dict[str, tuple[str, ...]] = {}
        self._sockets: dict[_SocketKey, socket.socket] = {}  # duplicates, ours to shut and close
        self._started: float | None = None
        self._ended: _End | None = None
        self._ended_after = 0.0
        self._specific: str = ""  # a more precise message (which host's DNS stalled, ...)
        self._entered = False
        self._finished = threading.Event()
        self._refuse_private = refuse_private
        for host, addresses in (pins or {}).items():
            self.pin(host, addresses)

    @property
    def refuse_private(self) -> bool:
        """An unpinned host (a redirect's, an SDK's own) may not lead to a private or
        loopback address either: the operator does not allow private endpoints."""
        return self._refuse_private

    # --- the deadline ---------------------------------------------------------------------

    @property
    def timeout_seconds(self) -> float:
        """The probe's whole budget, in seconds."""
        return self._timeout

    @property
    def deadline(self) -> float | None:
        """The clock reading (`time.monotonic`) of the deadline; None until the probe starts."""
        return None if self._started is None else self._started + self._timeout

    def elapsed(self) -> float:
        """Seconds since the probe started (0 before)."""
        return 0.0 if self._started is None else time.monotonic() - self._started

    def remaining(self) -> float:
        """Seconds left before the deadline (the whole timeout before the start; 0 once ended)."""
        if self._ended is not None:
            return 0.0
        return max(0.0, self._timeout - self.elapsed())

    @property
    def aborted(self) -> bool:
        """`abort()` ended the probe."""
        return self._ended is _End.ABORT

    @property
    def ended(self) -> bool:
        """Aborted, or the deadline has passed (even if the watchdog has yet to act)."""
        return self._ended is not None or (
            self._started is not None and self.elapsed() >= self._timeout
        )

    @property
    def finished(self) -> bool:
        """The probe's `with` block has been left: its thread no longer runs the probe."""
        return self._finished.is_set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the probe's `with` block is left; False if `timeout` passed first."""
        return self._finished.wait(timeout)

    def abort(self) -> None:
        """End the probe now, from any thread: shut its sockets, wake its DNS wait.

        Before the probe starts, it makes the probe end as soon as it starts;
        after it finished, it does nothing.
        """
        self._end(_End.ABORT)

    def end_error(self) -> DestinationError | None:
        """The error to report when the probe was ended (deadline, abort, an answer too
        long); None otherwise.

        The message never repeats the SDK's words (which describe a shut
        socket, not the cause) and holds no secret: only the timeout, for a
        stalled name resolution the host, for an answer too long its status.
        """
        if not self.ended:
            return None
        if self._ended is _End.ABORT:
            return ProbeTimeoutError(
                f"the probe was aborted after {self._ended_after:.1f}s, before a complete answer"
            )
        if self._ended is _End.OVERSIZE:
            return ProbeFailedError(self._specific)
        return ProbeTimeoutError(self._specific or f"no complete answer within {self._timeout:g}s")

    def _end(self, how: _End, why: str = "") -> None:
        with self._cond:
            if self._ended is not None or self._finished.is_set():
                return
            self._ended = how
            if why:
                self._specific = why
            self._ended_after = self.elapsed()
            doomed = list(self._sockets.values())
            self._cond.notify_all()
        for sock in doomed:
            _shut(sock)

    # --- pinning and name resolution --------------------------------------------------------

    def pin(self, host: str, addresses: Iterable[str]) -> None:
        """Connect to `host` only at `addresses` (those the endpoint guard checked)."""
        checked = tuple(dict.fromkeys(addresses))
        if not checked:
            raise ValueError(f"no address to pin {host!r} to")
        with self._cond:
            self._pins[_host_key(host)] = checked

    def pinned(self, host: str) -> tuple[str, ...] | None:
        """The addresses `host` is pinned to, or None."""
        with self._cond:
            return self._pins.get(_host_key(host))

    def resolve(self, host: str, port: int, resolver: Resolver | None = None) -> Sequence[str]:
        """`host`'s addresses, waiting no longer than the time left.

        Uses `resolver`, else the one the control was made with, else the
        system's, in the shared DNS pool. Raises `ProbeTimeoutError` naming
        the host when there is no answer in time (or the probe was aborted);
        the resolver's own errors (`OSError`) are raised as they are.
        """
        if self._started is None:
            raise RuntimeError("ProbeControl.resolve() runs inside `with control:`")
        job = _Resolution(resolver or self._resolver or system_resolve, host, port, self)
        with self._cond:
            if self.ended:
                raise self._final_error()
            _dns.submit(job)
            while not job.done and not self.ended:
                self._cond.wait(self.remaining())
            if not job.done:
                job.abandoned = True
                if self._ended is not _End.ABORT and not self._specific:
                    self._specific = (
                        f"no DNS answer for host {host!r} within the probe's {self._timeout:g}s"
                    )
                raise self._final_error()
        if job.error is not None:
            raise job.error
        return job.result

    def _final_error(self) -> DestinationError:
        return self.end_error() or ProbeTimeoutError(f"no answer within {self._timeout:g}s")

    # --- sockets ----------------------------------------------------------------------------

    def _budget(self, asked: Any) -> float:
        """A socket timeout: what is left, or less if the caller asked for less."""
        left = max(self.remaining(), 0.001)  # 0 would make the socket non-blocking
        if isinstance(asked, int | float) and not isinstance(asked, bool):
            return min(float(asked), left)
        return left  # None (blocking) or urllib3's "default" sentinel

    def _register(self, sock: socket.socket) -> _SocketKey:
        """Watch `sock` (through a duplicate, which survives urllib3 wrapping it in TLS).

        Raises `TimeoutError` once the probe ended: no new connection then.
        """
        with self._cond:
            if self.ended or self._finished.is_set():
                raise TimeoutError(self._refusal())
            twin = sock.dup()
            key = _socket_key(twin.fileno())
            self._sockets[key] = twin
            return key

    def _forget(self, key: _SocketKey) -> None:
        with self._cond:
            twin = self._sockets.pop(key, None)
        if twin is not None:
            twin.close()

    def _owns(self, sock: Any) -> bool:
        """`sock` (a plain or TLS socket) was opened under this control and is still open."""
        try:
            key = _socket_key(sock.fileno())
        except (AttributeError, OSError, ValueError):
            return False
        with self._cond:
            return key in self._sockets

    def _oversize(self, status: object) -> OSError:
        """End the probe for an answer past `MAX_ANSWER_BYTES`; the error to raise in the read."""
        said = f" (HTTP {status})" if isinstance(status, int) else ""
        why = (
            f"the endpoint's answer{said} is longer than {MAX_ANSWER_BYTES // 1024} KiB; "
            "the probe read no further"
        )
        self._end(_End.OVERSIZE, why)
        return ConnectionAbortedError(errno.ECONNABORTED, why)

    def _refusal(self) -> str:
        error = self.end_error()
        return error.message if error is not None else "the probe has finished"

    # --- the probe's lifetime ---------------------------------------------------------------

    def __enter__(self) -> ProbeControl:
        if getattr(_local, "control", None) is not None:
            raise RuntimeError("a probe is already running under a ProbeControl in this thread")
        with self._cond:
            if self._entered:
                raise RuntimeError("a ProbeControl runs one probe only")
            self._entered = True
            self._started = time.monotonic()
        install()
        _local.control = self
        with _registry_lock:
            _registry.add(self)
        _watchdog.watch(self)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _local.control = None
        with self._cond:
            self._finished.set()
            twins = list(self._sockets.values())
            self._sockets.clear()
            self._cond.notify_all()
        # The probe is over: its pooled connections must not outlive it unwatched.
        for twin in twins:
            _shut(twin)
            twin.close()
        with _registry_lock:
            _registry.discard(self)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # not connected (yet, or any more): nothing to wake
        sock.shutdown(socket.SHUT_RDWR)


# --- which probe a thread runs; stragglers ------------------------------------------------------

_local = threading.local()
_registry: set[ProbeControl] = set()
_registry_lock = threading.Lock()


def current() -> ProbeControl | None:
    """The control of the probe running in this thread, if any."""
    control: ProbeControl | None = getattr(_local, "control", None)
    return control


def stragglers() -> int:
    """Probe threads still running after their control ended (deadline passed or aborted).

    They hold a worker thread, not a socket: their sockets are shut. A gauge
    can read this (`Gauge.set_function(stragglers)`).
    """
    with _registry_lock:
        running = list(_registry)
    return sum(1 for control in running if control.ended)


# --- the watchdog: one thread, a heap of deadlines ---------------------------------------------


class _Watchdog:
    """Ends each control at its deadline. One daemon thread for the process, started lazily."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, ProbeControl]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, control: ProbeControl) -> None:
        deadline = control.deadline
        if deadline is None:
            return
        with self._cond:
            heapq.heappush(self._heap, (deadline, next(self._order), control))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="probe-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    # Controls that finished early need no end: drop them as they surface.
                    while self._heap and self._heap[0][2].finished:
                        heapq.heappop(self._heap)
                    if self._heap and self._heap[0][0] <= time.monotonic():
                        _, _, due = heapq.heappop(self._heap)
                        break
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(wait)
            try:
                due._end(_End.DEADLINE)
            except Exception:  # the one watchdog must outlive any one probe
                logger.exception("could not end a probe at its deadline")


_watchdog = _Watchdog()


# --- bounded name resolution ------------------------------------------------------------------


@dataclass(eq=False)
class _Resolution:
    resolver: Resolver
    host: str
    port: int
    control: ProbeControl
    result: Sequence[str] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False
    abandoned: bool = False  # the probe stopped waiting: skip it if it has not started


class _ResolverPool:
    """`DNS_THREADS` daemon threads (daemon: a resolver stuck at exit must not hold the process)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._jobs: queue.SimpleQueue[_Resolution] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._in_flight = 0

    def submit(self, job: _Resolution) -> None:
        with self._lock:
            self._in_flight += 1
            if len(self._threads) < self._size:
                thread = threading.Thread(
                    target=self._run, name=f"probe-dns-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._jobs.put(job)

    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            result: Sequence[str] = []
            error: BaseException | None = None
            if not job.abandoned:
                try:
                    result = list(job.resolver(job.host, job.port))
                except Exception as exc:  # noqa: BLE001 - handed to the waiting probe
                    error = exc
            with job.control._cond:
                job.result, job.error, job.done = result, error, True
                job.control._cond.notify_all()
            with self._lock:
                self._in_flight -= 1


_dns = _ResolverPool(DNS_THREADS)


def resolutions_in_flight() -> int:
    """Name resolutions queued or running in the DNS pool (some may have been given up on)."""
    return _dns.in_flight()


# --- the urllib3 hooks ------------------------------------------------------------------------

_install_lock = threading.Lock()
_installed = False
_original_create_connection: Callable[..., socket.socket] | None = None
_original_is_connection_dropped: Callable[[Any], bool] | None = None
_original_response_init: Callable[..., None] | None = None
_original_decode: Callable[..., bytes] | None = None


def install() -> None:
    """Put the hooks into urllib3 (once per process; later calls do nothing).

    Called on the first `with control:`; without urllib3 there is nothing to
    hook and probes are bounded by their SDK's own timeouts only.
    """
    global _installed, _original_create_connection, _original_is_connection_dropped
    global _original_response_init, _original_decode
    with _install_lock:
        if _installed:
            return
        # Every HTTP client of the SDKs reads its answers through http.client's response.
        answer_class: Any = http.client.HTTPResponse
        _original_response_init = answer_class.__init__
        answer_class.__init__ = _response_init
        try:
            import urllib3.connectionpool
            import urllib3.response
            import urllib3.util.connection
        except ImportError:
            _installed = True
            return
        _original_create_connection = urllib3.util.connection.create_connection
        urllib3.util.connection.create_connection = _create_connection
        # connectionpool imported the function by name: its own global is the one to replace.
        pool_module: Any = urllib3.connectionpool
        _original_is_connection_dropped = pool_module.is_connection_dropped
        pool_module.is_connection_dropped = _is_connection_dropped
        decoding_class: Any = urllib3.response.HTTPResponse
        _original_decode = decoding_class._decode
        decoding_class._decode = _decode
        _installed = True


def _create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
    """urllib3's `create_connection`, under the current thread's control if there is one."""
    control = current()
    assert _original_create_connection is not None
    if control is None:
        return _original_create_connection(address, *args, **kwargs)
    return _connect_under(control, address, *args, **kwargs)


def _connect_under(
    control: ProbeControl,
    address: tuple[str, int],
    timeout: Any = None,
    source_address: tuple[str, int] | None = None,
    socket_options: Sequence[tuple[int, int, int | bytes]] | None = None,
) -> socket.socket:
    from urllib3.util.connection import allowed_gai_family

    host, port = address
    # Pinned addresses were checked by the endpoint guard; any other host is checked here.
    addresses = control.pinned(host)
    if addresses is None:
        addresses = _unchecked_addresses(control, host, port)
    family = allowed_gai_family()
    error: OSError | None = None
    for literal in addresses:
        try:
            # Numeric only: turns an address into a socket address, never asks DNS.
            infos = socket.getaddrinfo(
                literal, port, family, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST
            )
        except socket.gaierror as exc:  # an IPv6 address on a host without IPv6
            error = exc
            continue
        for af, kind, proto, _, sockaddr in infos:
            sock = socket.socket(af, kind, proto)
            key: _SocketKey | None = None
            try:
                key = control._register(sock)
                for option in socket_options or ():
                    sock.setsockopt(*option)
                sock.settimeout(control._budget(timeout))
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                error = exc
                if key is not None:
                    control._forget(key)
                sock.close()
    if error is not None:
        raise error
    raise OSError(f"no address to connect to for {host!r}")


def _unchecked_addresses(control: ProbeControl, host: str, port: int) -> tuple[str, ...]:
    """The addresses to dial for a host the guard did not check (a redirect's, an SDK's own).

    A literal address is its own answer, a name is resolved (bounded by the
    deadline); either way every address must pass `classify_address`, as in
    the guard, so a redirect to `169.254.169.254` is refused like one to a
    name that resolves there. Raises `ConnectionRefusedError` before any
    connection is made.
    """
    bare = host.strip("[]")
    if _is_literal(host):
        addresses: tuple[str, ...] = (bare,)
    else:
        try:
            addresses = tuple(control.resolve(bare, port))
        except DestinationError as err:  # the probe ended: deadline, abort, an answer too long
            # An OSError, so that urllib3 reports a connect timeout like any other.
            raise TimeoutError(err.message) from None
    for answer in addresses:
        always, what = classify_address(answer)
        shown = repr(host) if answer == bare else f"{host!r} ({answer})"
        if always:
            raise ConnectionRefusedError(
                errno.ECONNREFUSED, f"{shown} is {what} and is always refused"
            )
        if what and control.refuse_private:
            raise ConnectionRefusedError(
                errno.ECONNREFUSED,
                f"{shown} is a {what} address; the operator refuses those "
                "unless it is started with private endpoints allowed",
            )
    return addresses


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def _is_connection_dropped(conn: Any) -> bool:
    """urllib3's pool check; under a control, a connection it did not open counts as dropped."""
    assert _original_is_connection_dropped is not None
    dropped = _original_is_connection_dropped(conn)
    control = current()
    if control is None or dropped:
        return dropped
    return not control._owns(getattr(conn, "sock", None))


# --- bounded answers --------------------------------------------------------------------------


def _response_init(response: Any, sock: Any, *args: Any, **kwargs: Any) -> None:
    """http.client's response; under a control, its socket file is bounded."""
    assert _original_response_init is not None
    _original_response_init(response, sock, *args, **kwargs)
    control = current()
    if control is not None:
        response.fp = _BoundedAnswer(response.fp, control, response)


def _decode(response: Any, data: bytes, *args: Any, **kwargs: Any) -> bytes:
    """urllib3's decoder; under a control, an answer may not grow past the bound either.

    One read is decompressed whole before it can be counted: the bound holds from the next.
    """
    assert _original_decode is not None
    decoded = _original_decode(response, data, *args, **kwargs)
    control = current()
    if control is not None and decoded:
        total = getattr(response, "_probe_decoded_bytes", 0) + len(decoded)
        response._probe_decoded_bytes = total
        if total > MAX_ANSWER_BYTES:
            raise control._oversize(getattr(response, "status", None))
    return decoded


class _BoundedAnswer:
    """A response's socket file that hands out at most `MAX_ANSWER_BYTES`, then ends the probe.

    http.client reads the status line, the headers and the body through it
    (`readline`, `read`, `readinto`, `read1`), and urllib3 reads chunked
    bodies through it too; each read asks for no more than one byte past
    what is left, so no read can pull in more than the bound.
    """

    def __init__(self, raw: Any, control: ProbeControl, response: Any) -> None:
        self._raw = raw
        self._control = control
        self._response = response
        self._count = 0

    def _room(self, asked: int | None) -> int:
        room = MAX_ANSWER_BYTES - self._count + 1
        return room if asked is None or asked < 0 else min(asked, room)

    def _took(self, size: int) -> None:
        self._count += size
        if self._count > MAX_ANSWER_BYTES:
            raise self._control._oversize(getattr(self._response, "status", None))

    def read(self, size: int | None = -1) -> bytes:
        data: bytes = self._raw.read(self._room(size))
        self._took(len(data))
        return data

    def read1(self, size: int = -1) -> bytes:
        data: bytes = self._raw.read1(self._room(size))
        self._took(len(data))
        return data

    def readline(self, size: int | None = -1) -> bytes:
        data: bytes = self._raw.readline(self._room(size))
        self._took(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        got: int = self._raw.readinto(view[: self._room(len(view))])
        self._took(got or 0)
        return got

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)  # close, closed, fileno, flush, peek, ...
