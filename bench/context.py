"""What every scenario uses: the settings, the operator, the floor, namespaces, trackers.

A scenario sets up the state it measures (operator stopped or running, which
Destinations are stored) through this object, so that scenarios can run
alone or one after another in one control plane. The operator and the floor
never run at the same time, and neither ever sees the other's objects: the
floor's namespace is deleted before the operator starts again.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controlplane import die_with_parent
from environment import BenchEnvironment
from logs import AuditLog, S3RequestLog
from objects import ObjectMaker, destination, name_of, unrelated_secret
from operator_process import OperatorProcess
from tracker import Predicate, StatusTracker, verified, verified_with_request

BENCH = Path(__file__).resolve().parent
WARMUP_NAMESPACE, WARMUP_NAME = "bench-warmup", "warmup"
UNRELATED_NAMESPACE = "bench-unrelated"
FLOOR_GRACE_SECONDS = 10.0  # the floor is done: how long its last patches may take to be seen


def ratio(measured: float | None, floor: float | None) -> float | None:
    """measured / floor, to two places; None without both."""
    if measured is None or not floor:
        return None
    return round(measured / floor, 2)


class NotReached(Exception):
    """A state the scenario waits for did not come in time: a result, not a harness failure."""


@dataclass(frozen=True)
class Settings:
    count: int
    steady_seconds: float
    concurrency: int  # the operator's --probe-concurrency, the floor's threads
    create_threads: int
    repeats: int
    reverify_count: int
    rotation_count: int
    seconds_per_object: float
    operator_log_level: str
    background_secrets: int = 0  # Secrets no Destination names, made before any scenario
    background_secret_bytes: int = 4096
    unrelated_secrets: tuple[int, ...] = (0, 1000)  # `secrets`: each N, ascending
    secret_kib: int = 100  # `secrets`: each unrelated Secret's data
    secret_destinations: int = 20  # `secrets`: Destinations sharing one Secret
    flowschema_first: bool = False  # `flowschema`: the phase with the FlowSchema first
    # `restart-verified`: one more start for each, with these operator settings on top
    restart_variants: tuple[dict[str, str], ...] = ()


@dataclass
class FloorRun:
    proc: subprocess.Popen[str]
    spawned_at: float
    namespace: str
    count: int


@dataclass
class Bench:
    env: BenchEnvironment
    settings: Settings
    operator: OperatorProcess
    results: dict[str, Any]
    maker: ObjectMaker = field(init=False)
    state: dict[str, Any] = field(default_factory=dict)  # what one scenario leaves to others
    namespaces: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.maker = ObjectMaker(self.env.admin_client, self.settings.create_threads)

    @property
    def audit(self) -> AuditLog:
        assert self.env.audit is not None
        return self.env.audit

    @property
    def s3_log(self) -> S3RequestLog:
        assert self.env.s3_log is not None
        return self.env.s3_log

    def limit(self, count: int) -> float:
        """How long to wait for `count` Destinations before calling it not reached."""
        return 120.0 + count * self.settings.seconds_per_object

    def record(self, scenario: str, key: str, value: Any) -> None:
        """Keep a figure and print it at once, so that a later failure does not lose it."""
        self.results.setdefault(scenario, {})[key] = value
        print(f"bench: {scenario}.{key} = {json.dumps(value)}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.maker.close()

    # --- namespaces and objects --------------------------------------------------------------

    def namespace(self, name: str) -> str:
        self.env.namespace_with_secret(name)
        self.namespaces.add(name)
        return name

    def drop(self, name: str) -> None:
        if name in self.namespaces:
            self.env.delete_namespace(name, timeout=self.limit(self.settings.count))
            self.namespaces.discard(name)

    def drop_all_but_warmup(self) -> None:
        for name in sorted(self.namespaces - {WARMUP_NAMESPACE, UNRELATED_NAMESPACE}):
            self.drop(name)

    def bodies(self, namespace: str, count: int) -> list[Any]:
        return [
            destination(namespace, name_of(i), self.env.s3, shard="ab"[i % 2]) for i in range(count)
        ]

    def track(self, namespace: str, predicate: Predicate = verified) -> StatusTracker:
        return StatusTracker(self.env.admin_client, namespace, predicate).start()

    def create_and_wait(
        self,
        namespace: str,
        what: str,
        *,
        floor: FloorRun | None = None,
        maker: ObjectMaker | None = None,
    ) -> tuple[float, float]:
        """Create N from the start of the clock, through `maker` (the admin's by default):
        (creation seconds, seconds to all Verified)."""
        count = self.settings.count
        bodies = self.bodies(namespace, count)
        tracker = self.track(namespace)
        try:
            started = time.monotonic()
            creation = (maker or self.maker).create(bodies)
            met = self.wait_all(tracker, count, what, floor=floor)
        finally:
            tracker.stop()
        return round(creation, 2), round(max(met.values()) - started, 2)

    def wait_all(
        self,
        tracker: StatusTracker,
        count: int,
        what: str,
        *,
        floor: FloorRun | None = None,
    ) -> dict[str, float]:
        """Wait until `count` met the tracker's predicate, while the operator (or `floor`,
        when given) keeps running."""
        deadline = time.monotonic() + self.limit(count)
        floor_ended: float | None = None
        while not tracker.wait(count, min(2.0, max(0.0, deadline - time.monotonic()))):
            done = len(tracker.met())
            if floor is None:
                self.operator.check_running()
            elif floor.proc.poll() is not None:
                if floor.proc.returncode != 0:
                    raise RuntimeError(
                        f"the floor exited with {floor.proc.returncode}; see floor.log"
                    )
                floor_ended = floor_ended or time.monotonic()
                if time.monotonic() - floor_ended > FLOOR_GRACE_SECONDS:
                    raise NotReached(f"{what}: the floor ended with {done} of {count} verified")
            if time.monotonic() >= deadline:
                raise NotReached(f"{what}: {done} of {count} after {self.limit(count):.0f} s")
        return tracker.met()

    # --- the operator ------------------------------------------------------------------------

    def setup(self) -> None:
        """The warm-up Destination: verified once by every operator started warm."""
        self.namespace(WARMUP_NAMESPACE)
        self.maker.create_one(destination(WARMUP_NAMESPACE, WARMUP_NAME, self.env.s3))
        if self.settings.background_secrets:
            self.namespace(UNRELATED_NAMESPACE)
            size = self.settings.background_secret_bytes
            seconds = self.maker.create_secrets(
                unrelated_secret(UNRELATED_NAMESPACE, i, size)
                for i in range(self.settings.background_secrets)
            )
            self.record("setup", "unrelated_secrets", self.settings.background_secrets)
            self.record("setup", "unrelated_secret_bytes", size)
            self.record("setup", "unrelated_secrets_creation_s", round(seconds, 2))

    def start_operator(self, label: str) -> None:
        """Start the operator and wait until it is warm: everything stored is armed, and
        a requested verification of the warm-up Destination is done (boto3 loaded, the
        watches running)."""
        if self.operator.running:
            self.operator.stop()
        self.operator.start(label)
        stored = self.env.stored_destinations()
        armed, _ = self.operator.wait_armed(stored, self.limit(stored))
        if armed is None:
            raise NotReached(f"the operator did not arm {stored} stored Destinations")
        request = f"warm-{time.time_ns()}"
        tracker = self.track(WARMUP_NAMESPACE, verified_with_request(request))
        try:
            self.maker.request_verification(WARMUP_NAMESPACE, [WARMUP_NAME], request)
            if tracker.wait_for(WARMUP_NAME, timeout=60) is None:
                raise NotReached("the operator did not verify the warm-up Destination in 60 s")
        finally:
            tracker.stop()

    def ensure_operator(self, label: str) -> None:
        if not self.operator.running:
            self.start_operator(label)

    # --- the floor ---------------------------------------------------------------------------

    def spawn_floor(
        self, namespace: str, count: int, *, wait_ready: bool, contract: bool = False
    ) -> FloorRun:
        """Start bench/floor.py under the operator's ServiceAccount; the operator is stopped.
        `contract`: the contract floor (a Reconciling patch, then the result)."""
        self.operator.stop()
        kubeconfig = self.env.operator_kubeconfig()
        command = [sys.executable, str(BENCH / "floor.py"), "--kubeconfig", str(kubeconfig)]
        command += ["--namespace", namespace, "--count", str(count)]
        command += ["--concurrency", str(self.settings.concurrency)]
        command += ["--contract"] if contract else []
        with (self.env.work / "floor.log").open("a") as log:
            spawned_at = time.monotonic()
            proc = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                text=True,
                preexec_fn=die_with_parent,
            )
        run = FloorRun(proc, spawned_at, namespace, count)
        if wait_ready:
            line = self._floor_line(run, timeout=120)
            if line != "ready":
                self.end_floor(run)
                raise RuntimeError(f"the floor did not start: {line!r}; see floor.log")
        return run

    def _floor_line(self, run: FloorRun, timeout: float) -> str:
        assert run.proc.stdout is not None
        readable, _, _ = select.select([run.proc.stdout], [], [], timeout)
        return run.proc.stdout.readline().strip() if readable else ""

    def end_floor(self, run: FloorRun) -> dict[str, Any]:
        """The floor's own summary (it exits once it has done `count`), or why there is none."""
        try:
            out, _ = run.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            run.proc.kill()
            out, _ = run.proc.communicate(timeout=10)
            return {"error": "did not finish; killed"}
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if run.proc.returncode != 0 or not lines:
            return {"error": f"exit code {run.proc.returncode}; see floor.log"}
        summary: dict[str, Any] = json.loads(lines[-1])
        return summary
