"""`verification.timeout` is a deadline: whatever the server does, a probe ends in time.

Real sockets on loopback and the real S3 SDK, through `probe.verify.verify`: a
server that trickles its answer, a TLS handshake that never completes, a
name that takes 30 s to resolve, an abort from another thread, and a DNS
answer that changes between the endpoint guard's check and the connection.
Each probe runs in a worker thread of its own, as in the operator, and the
tests check that thread has ended (no straggler left blocked).
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Iterator, Sequence

import pytest
from s3cases import s3_spec
from slowservers import TinyS3, TrickleServer

from destination_operator.api.status import Reason, StepOutcome
from destination_operator.outcome import Outcome
from destination_operator.probe import control as probecontrol
from destination_operator.probe import dnspool
from destination_operator.probe.control import ProbeControl
from destination_operator.probe.endpoints import Resolver
from destination_operator.probe.verify import verify
from loopback import SilentServer

NOW = datetime.datetime(2026, 11, 22, 7, 0, tzinfo=datetime.UTC)
CANARY = "canary-SECRET-never-show-me-7b2d9e41"
SECRET = {"accessKeyId": b"AKIAPROBEDEADLINE001", "secretAccessKey": CANARY.encode()}
TIMEOUT = 2.0
SLACK = 1.0  # the bound the tests hold every probe to: timeout + 1 s


class Probe:
    """`verify()` in a worker thread of its own; `started`/`returned` are monotonic times."""

    def __init__(
        self,
        endpoint: str,
        *,
        timeout: str = "2s",
        resolve: Resolver | None = None,
        control: ProbeControl | None = None,
    ) -> None:
        self.spec = s3_spec(endpoint, "bucket", timeout=timeout)
        self.resolve = resolve
        self.control = control
        self.outcome: Outcome | None = None
        self.started = 0.0
        self.returned = 0.0
        self.thread = threading.Thread(target=self._run, name="probe-under-test", daemon=True)

    def _run(self) -> None:
        self.outcome = verify(
            self.spec,
            SECRET,
            secret_uid="uid",
            object_key="probes/.destination-operator-probe/uid.txt",
            allow_private=True,
            now=NOW,
            resolve=self.resolve,
            control=self.control,
        )
        self.returned = time.monotonic()

    def start(self) -> Probe:
        self.started = time.monotonic()
        self.thread.start()
        return self

    def result(self, within: float) -> tuple[Outcome, float]:
        """The outcome and the seconds it took; fails if the thread still runs after `within`."""
        self.thread.join(within)
        assert not self.thread.is_alive(), f"the probe thread is still blocked after {within}s"
        assert self.outcome is not None
        return self.outcome, self.returned - self.started


def assert_clean_timeout(outcome: Outcome, elapsed: float) -> None:
    assert outcome.reason == Reason.Timeout, outcome
    assert not outcome.verified
    assert elapsed < TIMEOUT + SLACK, elapsed
    assert CANARY not in repr(outcome) and "AKIAPROBEDEADLINE001" not in repr(outcome)
    assert probecontrol.stragglers() == 0


@pytest.fixture
def trickle() -> Iterator[TrickleServer]:
    server = TrickleServer(delay=0.8)
    try:
        yield server
    finally:
        server.close()


def test_a_trickled_answer_is_cut_at_the_deadline(trickle: TrickleServer) -> None:
    """The defect: one byte every 0.8 s held a 2 s probe for 48 s and it 'succeeded'."""
    probe = Probe(f"http://127.0.0.1:{trickle.port}").start()
    outcome, elapsed = probe.result(TIMEOUT + 5)
    print(f"trickle: {elapsed:.2f}s")
    assert_clean_timeout(outcome, elapsed)
    assert elapsed >= TIMEOUT - 0.05  # the deadline, not an SDK timeout, ended it
    assert outcome.message == "no complete answer within 2s"
    assert trickle.requests and trickle.requests[0].startswith("PUT /bucket/probes/")
    steps = {step.name.value: (step.outcome, step.message) for step in outcome.steps}
    assert steps["Write"] == (StepOutcome.Failed, "no complete answer within 2s")
    assert steps["Delete"][0] is StepOutcome.Skipped
    # The server saw the connection close at the deadline: the socket was shut, not left open.
    time.sleep(0.1)
    assert trickle.closed_at is not None
    assert trickle.closed_at - probe.started < TIMEOUT + 0.5


def test_a_delete_cut_at_the_deadline_says_the_object_may_be_left() -> None:
    server = TinyS3(trickled=("DELETE",))
    try:
        outcome, elapsed = Probe(f"http://127.0.0.1:{server.port}").start().result(TIMEOUT + 5)
        print(f"trickled delete: {elapsed:.2f}s")
        assert_clean_timeout(outcome, elapsed)
        steps = {step.name.value: (step.outcome, step.message) for step in outcome.steps}
        assert steps["Write"][0] is StepOutcome.Succeeded
        assert steps["Delete"] == (StepOutcome.Failed, "no complete answer within 2s")
        assert outcome.message == (
            "no complete answer within 2s; the probe object was written and may be left in place"
        )
    finally:
        server.close()


def test_a_silent_tls_handshake_ends_in_time(silent_server: SilentServer) -> None:
    """Nothing comes back. CPython bounds a whole handshake by the socket's timeout, which
    the hook caps at what is left: the SDK's own timeout or the deadline, whichever is first."""
    outcome, elapsed = Probe(f"https://127.0.0.1:{silent_server.port}").start().result(TIMEOUT + 5)
    print(f"silent TLS handshake: {elapsed:.2f}s")
    assert_clean_timeout(outcome, elapsed)
    assert silent_server.accepted == 1


def test_a_trickled_tls_handshake_ends_in_time() -> None:
    """A byte of ServerHello every 0.8 s, so no single read times out."""
    server = TrickleServer(delay=0.8, tls=True)
    try:
        probe = Probe(f"https://127.0.0.1:{server.port}").start()
        outcome, elapsed = probe.result(TIMEOUT + 5)
        print(f"trickled TLS handshake: {elapsed:.2f}s")
        assert_clean_timeout(outcome, elapsed)
        time.sleep(0.1)
        assert server.closed_at is not None and server.closed_at - probe.returned < 0.5
    finally:
        server.close()


def test_a_slow_dns_answer_is_cut_at_the_deadline() -> None:
    released = threading.Event()
    asked: list[str] = []

    def slow(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        released.wait(30)  # a resolver that answers in 30 s (or when the test ends)
        return ["127.0.0.1"]

    try:
        outcome, elapsed = (
            Probe("http://slow-dns.example.test:9000", resolve=slow).start().result(TIMEOUT + 5)
        )
        print(f"slow DNS: {elapsed:.2f}s")
        assert_clean_timeout(outcome, elapsed)
        assert asked == ["slow-dns.example.test"]
        assert "slow-dns.example.test" in outcome.message and "DNS" in outcome.message
        assert outcome.last_probe() is None  # it never got as far as a connection
    finally:
        released.set()
    # The resolver's pool thread is released too, once the resolver returns.
    deadline = time.monotonic() + 2
    while dnspool.resolutions_in_flight() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dnspool.resolutions_in_flight() == 0


def test_abort_from_another_thread_ends_the_probe_at_once(trickle: TrickleServer) -> None:
    """The engine aborts on cancellation and shutdown; the outcome is a Timeout saying so."""
    control = ProbeControl(30)
    probe = Probe(f"http://127.0.0.1:{trickle.port}", timeout="30s", control=control).start()
    assert trickle.got_request.wait(5)
    time.sleep(0.3)  # mid-answer: some bytes of the response have arrived
    aborted_at = time.monotonic()
    threading.Thread(target=control.abort, name="engine").start()
    outcome, _ = probe.result(5)
    after_abort = probe.returned - aborted_at
    print(f"abort: returned {after_abort:.3f}s after abort()")
    assert after_abort < 0.5, after_abort
    assert outcome.reason == Reason.Timeout
    assert outcome.message.startswith("the probe was aborted after")
    assert control.aborted and control.finished
    assert probecontrol.stragglers() == 0


def test_aborted_before_it_starts_the_probe_connects_nowhere(trickle: TrickleServer) -> None:
    control = ProbeControl(30)
    control.abort()
    outcome, elapsed = Probe(f"http://127.0.0.1:{trickle.port}", control=control).start().result(5)
    assert outcome.reason == Reason.Timeout and elapsed < 0.5
    time.sleep(0.1)
    assert trickle.accepted == 0


def test_a_rebinding_dns_answer_cannot_move_the_connection() -> None:
    """The guard checks 127.0.0.1; the same name then answers 127.0.0.2: the probe stays."""
    checked = TinyS3("127.0.0.1")
    try:
        rebound = TinyS3("127.0.0.2", checked.port)
    except OSError:
        checked.close()
        pytest.skip("127.0.0.2 is not a loopback address here")
    answers: list[str] = []

    def rebinding(host: str, port: int) -> Sequence[str]:
        answers.append("127.0.0.1" if not answers else "127.0.0.2")
        return [answers[-1]]

    try:
        endpoint = f"http://rebind.example.test:{checked.port}"
        outcome, elapsed = Probe(endpoint, resolve=rebinding).start().result(TIMEOUT + 5)
        print(f"rebinding: {elapsed:.2f}s")
        assert outcome.verified, outcome
        assert [(m, local) for m, _, local in checked.requests] == [
            ("PUT", "127.0.0.1"),
            ("DELETE", "127.0.0.1"),
        ]
        assert rebound.accepted == 0 and rebound.requests == []
        assert answers == ["127.0.0.1"]  # checked once, never resolved again
    finally:
        checked.close()
        rebound.close()
