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

- urllib3 and http.client obey it in that thread, through the hooks of
  `probe.hooks`: connections go only to the addresses the endpoint guard
  checked for a pinned host (`pin()`), any other host's addresses are
  checked as the guard checks, each socket's timeout is at most what is
  left, every socket is registered with the control, a pooled connection is
  handed out only to the control that opened it, and every HTTP answer is
  bounded (`hooks.MAX_ANSWER_BYTES`);
- at the deadline one watchdog thread, shared by the whole process (a heap
  of deadlines), calls `shutdown(SHUT_RDWR)` on every socket of the probe;
  `abort()` does the same from the thread that calls it. A blocked recv,
  send or TLS handshake returns at once;
- `resolve()` runs `getaddrinfo` (or an injected resolver) in a small
  bounded pool of daemon threads (`probe.dnspool`) and waits only for what
  is left; no answer in time raises `ProbeTimeoutError` naming the host.

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
returns (`dnspool.resolutions_in_flight()`).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from types import TracebackType
from typing import Any

from destination_operator.errors import DestinationError, ProbeFailedError, ProbeTimeoutError

# No cycle: `hooks` imports nothing from here; it declares what it needs of us (`ThreadControl`).
from destination_operator.probe import dnspool, hooks
from destination_operator.probe.endpoints import Resolver

__all__ = ["ProbeControl", "stragglers"]

logger = logging.getLogger(__name__)

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
        job = dnspool.Resolution(
            resolver or self._resolver or dnspool.system_resolve, host, port, self._cond
        )
        with self._cond:
            if self.ended:
                raise self._final_error()
            dnspool.submit(job)
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

    # --- sockets and answers, for the hooks (`probe.hooks`) ------------------------------------

    def socket_timeout(self, asked: Any) -> float:
        """A socket timeout: what is left, or less if the caller asked for less."""
        left = max(self.remaining(), 0.001)  # 0 would make the socket non-blocking
        if isinstance(asked, int | float) and not isinstance(asked, bool):
            return min(float(asked), left)
        return left  # None (blocking) or urllib3's "default" sentinel

    def watch_socket(self, sock: socket.socket) -> _SocketKey:
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

    def forget_socket(self, key: _SocketKey) -> None:
        """Stop watching a socket `watch_socket` returned `key` for (it failed to connect)."""
        with self._cond:
            twin = self._sockets.pop(key, None)
        if twin is not None:
            twin.close()

    def owns_socket(self, sock: Any) -> bool:
        """`sock` (a plain or TLS socket) was opened under this control and is still open."""
        try:
            key = _socket_key(sock.fileno())
        except (AttributeError, OSError, ValueError):
            return False
        with self._cond:
            return key in self._sockets

    def end_for_answer(self, why: str) -> None:
        """End the probe for an answer past `hooks.MAX_ANSWER_BYTES`; `why` is what
        `end_error()` then says (reason `ProbeFailed`)."""
        self._end(_End.OVERSIZE, why)

    def _refusal(self) -> str:
        error = self.end_error()
        return error.message if error is not None else "the probe has finished"

    # --- the probe's lifetime ---------------------------------------------------------------

    def __enter__(self) -> ProbeControl:
        if hooks.current() is not None:
            raise RuntimeError("a probe is already running under a ProbeControl in this thread")
        with self._cond:
            if self._entered:
                raise RuntimeError("a ProbeControl runs one probe only")
            self._entered = True
            self._started = time.monotonic()
        hooks.install()
        hooks.set_current(self)
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
        hooks.set_current(None)
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


# --- probes running past their end ---------------------------------------------------------------

_registry: set[ProbeControl] = set()
_registry_lock = threading.Lock()


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
