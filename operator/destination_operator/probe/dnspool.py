"""The bounded pool of threads that resolve host names for probes.

`ProbeControl.resolve()` hands each name resolution to this pool: at most
`DNS_THREADS` daemon threads run `getaddrinfo` (or an injected resolver),
and the probe waits only for what is left of its deadline; no answer in time
raises `ProbeTimeoutError` naming the host. A `getaddrinfo` stuck in the
system resolver occupies a pool thread until it returns; such resolutions
are counted by `resolutions_in_flight()`.
"""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from destination_operator.probe.endpoints import Resolver

__all__ = ["DNS_THREADS", "Resolution", "resolutions_in_flight", "submit", "system_resolve"]

DNS_THREADS = 8
"""Threads that run name resolutions for probes; more queue, each bounded by its deadline."""


def system_resolve(host: str, port: int) -> Sequence[str]:
    """The system resolver's addresses for `host`, in its order of preference, without repeats."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(eq=False)
class Resolution:
    """One name to resolve, and its answer: set under `done_cond`, which is then notified."""

    resolver: Resolver
    host: str
    port: int
    done_cond: threading.Condition  # the waiting probe's condition
    result: Sequence[str] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False
    abandoned: bool = False  # the probe stopped waiting: skip it if it has not started


class _ResolverPool:
    """`DNS_THREADS` daemon threads (daemon: a resolver stuck at exit must not hold the process)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._jobs: queue.SimpleQueue[Resolution] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._in_flight = 0

    def submit(self, job: Resolution) -> None:
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
            with job.done_cond:
                job.result, job.error, job.done = result, error, True
                job.done_cond.notify_all()
            with self._lock:
                self._in_flight -= 1


_pool = _ResolverPool(DNS_THREADS)


def submit(job: Resolution) -> None:
    """Queue `job` in the shared pool; its answer is set under `job.done_cond`."""
    _pool.submit(job)


def resolutions_in_flight() -> int:
    """Name resolutions queued or running in the DNS pool (some may have been given up on)."""
    return _pool.in_flight()
