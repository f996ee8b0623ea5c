"""The hooks through which urllib3 and http.client obey the control of the probe in their thread.

`install()` puts them in place, once per process, on the first
`with control:` (`probe.control`). Each hook asks `current()` for the
control of the probe running in its thread; a thread without one gets the
original function, unchanged. Under a control:

- every TCP connection urllib3 opens in that thread (and so botocore's, and
  those of the SDKs built on urllib3 or requests) goes through one
  process-wide hook on `urllib3.util.connection.create_connection`. It
  - connects only to the addresses the endpoint guard checked for a pinned
    host (`ProbeControl.pin()`); a pinned host is never resolved again, so a
    DNS answer that changes between the check and the connection
    (rebinding) cannot redirect the probe. Unpinned hosts (AWS's own
    endpoints, when the Destination names none, or wherever a redirect
    points) are resolved with the control's bounded resolver
    (`probe.dnspool`; a literal address is its own answer), and every
    address is checked as the guard checks: one it always refuses (cloud
    metadata, link-local) is refused for them too, so a redirect cannot
    reach one; so are private and loopback addresses when `refuse_private`
    is set (the operator does not allow private endpoints);
  - sets the socket's timeout to at most what is left of the deadline;
  - registers the socket with the control, which shuts it at the deadline or
    on `abort()`, so a blocked recv, send or TLS handshake returns at once;
- a pooled connection is handed out only to the control that opened it (a
  second, smaller hook on urllib3's pool check): the SDK's clients are
  shared, and a socket nobody watches would lift the deadline again;
- every HTTP answer read in that thread is bounded: at most
  `MAX_ANSWER_BYTES` of its status line, headers and body as they arrive,
  and as many once decompressed (two small hooks, on `http.client`'s
  response and on urllib3's decoder). An SDK reads an error body whole and
  a hostile endpoint chooses its size; past the bound the probe ends as at
  its deadline, with reason `ProbeFailed`.
"""

from __future__ import annotations

import errno
import http.client
import ipaddress
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from destination_operator.errors import DestinationError
from destination_operator.probe.endpoints import classify_address

__all__ = ["MAX_ANSWER_BYTES", "ThreadControl", "current", "install", "set_current"]

MAX_ANSWER_BYTES = 128 * 1024
"""Bytes of one HTTP answer a probe reads (status line, headers and body), and again once
decompressed. A probe's answers are a few hundred bytes; a 64 KiB reason phrase still fits."""


class ThreadControl(Protocol):
    """What the hooks need of the control of the probe in their thread (a `ProbeControl`).

    Defined here, not imported from `probe.control`: that module imports this one (to
    install the hooks and set `current()`), so the hooks depend on no module above them.
    """

    @property
    def refuse_private(self) -> bool: ...

    def pinned(self, host: str) -> tuple[str, ...] | None: ...

    def resolve(self, host: str, port: int) -> Sequence[str]: ...

    def socket_timeout(self, asked: Any) -> float: ...

    def watch_socket(self, sock: socket.socket) -> tuple[int, int]: ...

    def forget_socket(self, key: tuple[int, int]) -> None: ...

    def owns_socket(self, sock: Any) -> bool: ...

    def end_for_answer(self, why: str) -> None: ...


# --- which control this thread's hooks obey -----------------------------------------------------

_local = threading.local()


def current() -> ThreadControl | None:
    """The control of the probe running in this thread, if any."""
    control: ThreadControl | None = getattr(_local, "control", None)
    return control


def set_current(control: ThreadControl | None) -> None:
    """Make `control` the one this thread's hooks obey (None: no probe runs here)."""
    _local.control = control


# --- installing the hooks -----------------------------------------------------------------------

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


# --- connections --------------------------------------------------------------------------------


def _create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
    """urllib3's `create_connection`, under the current thread's control if there is one."""
    control = current()
    assert _original_create_connection is not None
    if control is None:
        return _original_create_connection(address, *args, **kwargs)
    return _connect_under(control, address, *args, **kwargs)


def _connect_under(
    control: ThreadControl,
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
            key: tuple[int, int] | None = None
            try:
                key = control.watch_socket(sock)
                for option in socket_options or ():
                    sock.setsockopt(*option)
                sock.settimeout(control.socket_timeout(timeout))
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                error = exc
                if key is not None:
                    control.forget_socket(key)
                sock.close()
    if error is not None:
        raise error
    raise OSError(f"no address to connect to for {host!r}")


def _unchecked_addresses(control: ThreadControl, host: str, port: int) -> tuple[str, ...]:
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
    return not control.owns_socket(getattr(conn, "sock", None))


# --- bounded answers ----------------------------------------------------------------------------


def _too_long(control: ThreadControl, status: object) -> OSError:
    """End the probe for an answer past `MAX_ANSWER_BYTES`; the error to raise in the read."""
    said = f" (HTTP {status})" if isinstance(status, int) else ""
    why = (
        f"the endpoint's answer{said} is longer than {MAX_ANSWER_BYTES // 1024} KiB; "
        "the probe read no further"
    )
    control.end_for_answer(why)
    return ConnectionAbortedError(errno.ECONNABORTED, why)


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
            raise _too_long(control, getattr(response, "status", None))
    return decoded


class _BoundedAnswer:
    """A response's socket file that hands out at most `MAX_ANSWER_BYTES`, then ends the probe.

    http.client reads the status line, the headers and the body through it
    (`readline`, `read`, `readinto`, `read1`), and urllib3 reads chunked
    bodies through it too; each read asks for no more than one byte past
    what is left, so no read can pull in more than the bound.
    """

    def __init__(self, raw: Any, control: ThreadControl, response: Any) -> None:
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
            raise _too_long(self._control, getattr(self._response, "status", None))

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
