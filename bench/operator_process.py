"""The operator as the benchmark runs it: a child process, its metrics, its peak memory.

`destination-operator run` with its defaults (probe concurrency, workers,
intervals), under a fresh ServiceAccount token each start, private endpoints
allowed (everything is on loopback), and /metrics on a free port: the
benchmark reads `destination_operator_destinations` (tracked) and
`destination_operator_destinations_synced` (processed at least once since
start) to tell when every stored Destination is armed.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from controlplane import die_with_parent, stop_child

START_MARKER = "--- bench: operator started for "

TRACKED = "destination_operator_destinations"
SYNCED = "destination_operator_destinations_synced"
PROBES = "destination_operator_probes_total"
STATUS_WRITES = "destination_operator_status_writes_total"
READ = (TRACKED, SYNCED, PROBES, STATUS_WRITES)


class OperatorExited(Exception):
    """The operator ended by itself while a scenario needed it: a result, with its log's end."""


def listening_port() -> int:
    """A free port below the kernel's ephemeral range, so that no outgoing connection of
    another process takes it between now and the operator's bind."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(100):
        port = random.randrange(max(1024, low // 2), low)
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", port))
            return port
    raise RuntimeError("no free port below the ephemeral range")


def log_tail(path: Path, marker: str, lines: int = 12) -> str:
    """The last lines of the log after the last `marker` line."""
    text = path.read_text(errors="replace") if path.exists() else ""
    after = text.rpartition(marker)[2].splitlines()[1:]  # the first is the marker's label
    return "\n".join(after[-lines:])


def memory_mib(pid: int) -> dict[str, float]:
    """The process's peak (VmHWM) and current (VmRSS) resident set size, in MiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            found[key] = round(int(value.split()[0]) / 1024, 1)
    return found


class OperatorProcess:
    """Start, stop and read one operator at a time."""

    def __init__(
        self,
        mint_kubeconfig: Callable[[], Path],
        log: Path,
        *,
        probe_concurrency: int,
        log_level: str,
        settings: dict[str, str] | None = None,
        profile_dir: Path | None = None,
    ) -> None:
        self.mint_kubeconfig = mint_kubeconfig
        self.log = log
        self.probe_concurrency = probe_concurrency
        self.log_level = log_level
        self.settings = settings or {}  # more DESTINATION_OPERATOR_* variables
        self.profile_dir = profile_dir  # py-spy's samples of each process, when set
        self.profiler: subprocess.Popen[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0
        self.started_at = 0.0
        self.label = ""
        self.samples: list[dict[str, object]] = []  # memory at chosen moments, every process

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, label: str) -> float:
        """Start a new process; the monotonic time it was spawned at."""
        assert not self.running, "one operator at a time"
        self.metrics_port = listening_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(self.mint_kubeconfig()),
            "DESTINATION_OPERATOR_ALLOW_PRIVATE_ENDPOINTS": "true",
            "DESTINATION_OPERATOR_PROBE_CONCURRENCY": str(self.probe_concurrency),
            "DESTINATION_OPERATOR_HEALTH_PORT": "0",
            "DESTINATION_OPERATOR_METRICS_PORT": str(self.metrics_port),
            "DESTINATION_OPERATOR_LOG_LEVEL": self.log_level,
            **self.settings,
        }
        binary = Path(sys.executable).parent / "destination-operator"
        with self.log.open("ab") as out:
            out.write(f"{START_MARKER}{label}\n".encode())
            out.flush()
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(
                [str(binary), "run"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                preexec_fn=die_with_parent,
            )
        self.label = label
        if self.profile_dir is not None:
            self._profile(label)
        return self.started_at

    def _profile(self, label: str) -> None:
        """py-spy, sampling the process until it exits: collapsed stacks of the threads
        that were not idle (`profile-<label>.txt`)."""
        assert self.proc is not None and self.profile_dir is not None
        beside = Path(sys.executable).parent / "py-spy"
        spy = beside if beside.exists() else Path(shutil.which("py-spy") or beside)
        out = self.profile_dir / f"profile-{label}.txt"
        command = [str(spy), "record", "--pid", str(self.proc.pid), "--rate", "50"]
        command += ["--format", "raw", "--output", str(out), "--nonblocking"]
        with (self.profile_dir / "py-spy.log").open("ab") as log:
            self.profiler = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
            )

    def check_running(self) -> None:
        """Raise `OperatorExited` if the process has ended by itself."""
        ended = self.exit_report()
        if ended is not None:
            raise OperatorExited(ended)

    def exit_report(self) -> str | None:
        """None while the process runs; otherwise its exit code and the end of its log."""
        if self.proc is None or self.proc.poll() is None:
            return None
        tail = log_tail(self.log, START_MARKER)
        return f"the operator exited with code {self.proc.returncode}; its log ends:\n{tail}"

    def sample(self, moment: str) -> None:
        """Note the process's memory now, and how many Destinations it tracks."""
        if not self.running:
            return
        assert self.proc is not None
        taken: dict[str, object] = {"process": self.label, "moment": moment}
        taken.update(memory_mib(self.proc.pid))
        with contextlib.suppress(OSError):
            taken["destinations_tracked"] = self.metrics().get(TRACKED)
        self.samples.append(taken)

    def stop(self) -> None:
        """Note the process's memory (or how it ended, if it did), then stop it."""
        self.sample("stop")
        ended = self.exit_report()
        if ended is not None:
            self.samples.append({"process": self.label, "moment": "had exited", "how": ended})
        proc, self.proc = self.proc, None
        stop_child(proc, timeout=30)
        if self.profiler is not None:  # it writes its file once the process is gone
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.profiler.wait(timeout=60)
            stop_child(self.profiler, timeout=5)
            self.profiler = None

    def metrics(self) -> dict[str, float]:
        """The samples the benchmark reads (`READ`), each summed over its labels, by name.

        Only those are asked for (`name[]`): the whole of /metrics holds 18 series per
        Destination, and rendering 180,000 of them at every poll would cost the operator
        the CPU being measured."""
        asked = urllib.parse.urlencode([("name[]", name) for name in READ])
        url = f"http://127.0.0.1:{self.metrics_port}/metrics?{asked}"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        summed: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                summed[sample.name] = summed.get(sample.name, 0.0) + sample.value
        return summed

    def wait_armed(self, expected: int, timeout: float) -> tuple[float | None, dict[str, float]]:
        """Seconds from spawn until it tracks and has processed `expected` Destinations.

        None when that did not happen within `timeout`; with the last metrics read.
        """
        deadline = time.monotonic() + timeout
        last: dict[str, float] = {}
        while time.monotonic() < deadline:
            self.check_running()
            try:
                last = self.metrics()
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)  # not serving yet
                continue
            if last.get(TRACKED, 0) >= expected and last.get(SYNCED, 0) >= expected:
                return time.monotonic() - self.started_at, last
            time.sleep(0.25)  # each scrape costs the operator a little CPU
        return None, last
