#!/usr/bin/env python3
"""Start and stop a real Kubernetes control plane as plain processes on loopback.

etcd, kube-apiserver (secure serving, RBAC, service-account signing keys, a
client-certificate admin, an audit log of writes) and kube-controller-manager
(namespaces, garbage collection, ServiceAccount tokens), the same binaries that
controller-runtime's envtest runs, built by hack/build-binaries.sh.

    python hack/controlplane.py up   --state .cluster   # prints the kubeconfig path last
    python hack/controlplane.py down --state .cluster

The pytest session imports `ControlPlane` and runs its own, attached to the
test process so that nothing outlives it.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

HACK = Path(__file__).resolve().parent
# What a control plane runs: helm, the node's binaries and kstatus are the tests' own, and
# what needs them looks for them itself.
CONTROL_PLANE_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
ADMIN_USER = "destination-operator-admin"

# Writes only: reads are free, and writes are what the operator must keep few.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  # ServiceAccounts' reads too: the least-privilege test shows every read grant is used
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
    verbs: ["get", "list", "watch"]
  - level: Metadata
"""


class ControlPlaneError(Exception):
    """A failure with a one-line message that says what to do."""


@dataclass
class State:
    """What `up` leaves in the state folder, so `down` and a second `up` can find it."""

    etcd_port: int
    etcd_peer_port: int
    apiserver_port: int
    controller_manager_port: int
    pids: dict[str, int] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_binaries(binary_set: str = "all") -> Path:
    """Build what `binary_set` lacks with hack/build-binaries.sh (cached); the folder it prints.

    "controlplane" is the four binaries a control plane runs; "all" adds what the tests use.
    """
    done = subprocess.run(
        ["bash", str(HACK / "build-binaries.sh"), binary_set], stdout=subprocess.PIPE, text=True
    )
    if done.returncode != 0:
        raise ControlPlaneError("building the binaries failed (see above)")
    return Path(done.stdout.strip().splitlines()[-1])


def find_binaries(bin_dir: str | None = None, binary_set: str = "all") -> Path:
    """The folder holding the binaries: given, from the environment, or `binary_set` built now.

    Only the control plane's binaries are checked; what needs helm, kubelet or kstatus looks
    for them itself.
    """
    bin_dir = bin_dir or os.environ.get("DESTINATION_OPERATOR_BIN_DIR")
    path = Path(bin_dir) if bin_dir else build_binaries(binary_set)
    missing = [b for b in CONTROL_PLANE_BINARIES if not os.access(path / b, os.X_OK)]
    if missing:
        raise ControlPlaneError(
            f"{', '.join(missing)} missing in {path}; run 'make binaries' or fix KUBEBUILDER_ASSETS"
        )
    return path


# --- certificates --------------------------------------------------------------------------


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _cert(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    *,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _name(common_name: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def write_pki(pki: Path) -> None:
    """A CA, the API server's serving cert, an admin client cert and service-account keys."""
    pki.mkdir(parents=True, exist_ok=True)
    ca_key, ca_name = _key(), _name("destination-operator-local-ca")
    ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    serving_key = _key()
    sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes.default.svc"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
    ]
    serving = _cert(_name("kube-apiserver"), serving_key, ca_name, ca_key, sans=sans)
    admin_key = _key()
    admin = _cert(_name(ADMIN_USER, "system:masters"), admin_key, ca_name, ca_key)
    sa_key = _key()
    files = {
        "ca.crt": ca.public_bytes(serialization.Encoding.PEM),
        "ca.key": _pem_key(ca_key),
        "apiserver.crt": serving.public_bytes(serialization.Encoding.PEM),
        "apiserver.key": _pem_key(serving_key),
        "admin.crt": admin.public_bytes(serialization.Encoding.PEM),
        "admin.key": _pem_key(admin_key),
        "sa.key": _pem_key(sa_key),
        "sa.pub": sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }
    for name, data in files.items():
        (pki / name).write_bytes(data)
        (pki / name).chmod(0o600)


def kubeconfig_yaml(server: str, ca_pem: bytes, user: dict[str, str], name: str) -> str:
    """A kubeconfig with one cluster, one user and one current context."""

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": "local", "user": name}}],
        "current-context": name,
    }
    return json.dumps(config, indent=2) + "\n"


# --- processes -----------------------------------------------------------------------------


def die_with_parent() -> None:
    """Ask the kernel to kill this child when the test process goes, however it goes.

    SIGKILL, not SIGTERM: a kube-apiserver whose etcd is gone takes its time
    over a graceful shutdown, and attached state is thrown away anyway.
    """
    PR_SET_PDEATHSIG = 1
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not alive
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def stop_child(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """Stop a child process: SIGTERM, `timeout` seconds to exit, then SIGKILL; reap it."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def audit_events(path: Path) -> Iterator[dict[str, Any]]:
    """Each entry of an audit log the API server may still be writing: its last line may be
    half written, so only lines that end are read."""
    text = path.read_text()
    for line in text[: text.rfind("\n") + 1].splitlines():
        yield json.loads(line)


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager with their state in one folder."""

    def __init__(
        self,
        state_dir: Path,
        bin_dir: Path,
        *,
        attached: bool = True,
        apiserver_flags: tuple[str, ...] = (),
    ) -> None:
        self.state_dir = state_dir
        self.bin_dir = bin_dir
        self.attached = attached  # attached: children die with this process
        self.apiserver_flags = apiserver_flags  # after the usual ones: a feature gate, say
        self.state: State | None = None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    # paths
    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def pki(self) -> Path:
        return self.state_dir / "pki"

    @property
    def audit_log(self) -> Path:
        return self.state_dir / "audit.log"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def server(self) -> str:
        assert self.state is not None
        return f"https://127.0.0.1:{self.state.apiserver_port}"

    # lifecycle
    def load(self) -> State | None:
        """The state of a control plane started earlier, or None."""
        if not self.state_file.exists():
            return None
        try:
            raw = json.loads(self.state_file.read_text())
            self.state = State(**raw)
        except (ValueError, TypeError):
            return None
        return self.state

    def running(self) -> bool:
        state = self.load()
        return bool(state and state.pids and all(alive(p) for p in state.pids.values()))

    def start(self, timeout: float = 90.0) -> None:
        """Start all three; on a taken port, try fresh ports before giving up."""
        last: ControlPlaneError | None = None
        for _ in range(3):
            try:
                self._start_once(timeout)
                return
            except PortTaken as err:
                self.stop()
                last = err
        raise ControlPlaneError(f"{last}, three times; stop what holds the ports and run again")

    def _start_once(self, timeout: float) -> None:
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
        self.state_dir.mkdir(parents=True)
        write_pki(self.pki)
        (self.state_dir / "audit-policy.yaml").write_text(AUDIT_POLICY)
        self.state = State(
            etcd_port=free_port(),
            etcd_peer_port=free_port(),
            apiserver_port=free_port(),
            controller_manager_port=free_port(),
        )
        ca = (self.pki / "ca.crt").read_bytes()
        self.kubeconfig.write_text(
            kubeconfig_yaml(
                self.server,
                ca,
                {
                    "client-certificate-data": _b64(self.pki / "admin.crt"),
                    "client-key-data": _b64(self.pki / "admin.key"),
                },
                "admin",
            )
        )
        self.kubeconfig.chmod(0o600)
        deadline = time.monotonic() + timeout
        self._spawn("etcd", self._etcd_args())
        self._wait("etcd", deadline, self._etcd_ready)
        self._spawn("kube-apiserver", self._apiserver_args())
        self._wait("kube-apiserver", deadline, self._apiserver_ready)
        self._spawn("kube-controller-manager", self._controller_manager_args())
        self._wait("kube-controller-manager", deadline, self._controller_manager_ready)

    def stop(self) -> None:
        """Stop whatever runs, in reverse order; safe to call twice."""
        state = self.state or self.load()
        pids = dict(state.pids) if state else {}
        pids.update({name: proc.pid for name, proc in self._procs.items()})
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            if name in pids:
                stop_pid(pids[name])
        self._procs.clear()
        if state:
            state.pids.clear()

    def restart(self, name: str, timeout: float = 60.0) -> None:
        """Stop one component and start it again on its ports and data (chaos tests)."""
        assert self.state is not None
        args, ready = {
            "etcd": (self._etcd_args, self._etcd_ready),
            "kube-apiserver": (self._apiserver_args, self._apiserver_ready),
            "kube-controller-manager": (
                self._controller_manager_args,
                self._controller_manager_ready,
            ),
        }[name]
        pid = self.state.pids.get(name)
        if pid is not None:
            stop_pid(pid)
        self._spawn(name, args())
        self._wait(name, time.monotonic() + timeout, ready)

    # one process
    def _spawn(self, name: str, args: list[str]) -> None:
        assert self.state is not None
        # Appends: a restarted component keeps its earlier log (start() empties the folder).
        log = open(self.state_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        proc = subprocess.Popen(
            [str(self.bin_dir / name), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent if self.attached else None,
            start_new_session=not self.attached,
        )
        log.close()
        self._procs[name] = proc
        self.state.pids[name] = proc.pid
        self.state_file.write_text(json.dumps(asdict(self.state), indent=2))

    def _wait(self, name: str, deadline: float, ready: Callable[[], bool]) -> None:
        proc = self._procs[name]
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = self._log_tail(name)
                if "address already in use" in tail:
                    raise PortTaken(f"{name}: another process took its port while it started")
                last = tail.splitlines()[-1] if tail else "no output"
                raise ControlPlaneError(
                    f"{name} exited with code {proc.returncode}: {last}"
                    f" (full log: {self.state_dir / (name + '.log')})"
                )
            if ready():
                return
            time.sleep(0.2)
        raise ControlPlaneError(
            f"{name} was not ready in time; see {self.state_dir / (name + '.log')}"
        )

    def _log_tail(self, name: str) -> str:
        path = self.state_dir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    # arguments
    def _etcd_args(self) -> list[str]:
        assert self.state is not None
        client = f"http://127.0.0.1:{self.state.etcd_port}"
        peer = f"http://127.0.0.1:{self.state.etcd_peer_port}"
        return [
            "--name=default",
            f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]

    def _apiserver_args(self) -> list[str]:
        assert self.state is not None
        pki = self.pki
        return [
            f"--etcd-servers=http://127.0.0.1:{self.state.etcd_port}",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--secure-port={self.state.apiserver_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={self.server}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--audit-policy-file={self.state_dir / 'audit-policy.yaml'}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-maxsize=200",
            "--allow-privileged=true",
            *self.apiserver_flags,
        ]

    def _controller_manager_args(self) -> list[str]:
        assert self.state is not None
        pki = self.pki
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.state.controller_manager_port}",
            f"--cert-dir={self.state_dir / 'kcm'}",
            "--leader-elect=false",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            "--use-service-account-credentials=false",
        ]

    # readiness
    def _etcd_ready(self) -> bool:
        assert self.state is not None
        return _http_ok(f"http://127.0.0.1:{self.state.etcd_port}/health", None)

    def _admin_ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def _apiserver_ready(self) -> bool:
        return _http_ok(f"{self.server}/readyz", self._admin_ssl())

    def _controller_manager_ready(self) -> bool:
        assert self.state is not None
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # its serving cert is self-signed at start
        return _http_ok(f"https://127.0.0.1:{self.state.controller_manager_port}/healthz", ctx)


class PortTaken(ControlPlaneError):
    """Another process took a port between choosing it and binding it."""


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _http_ok(url: str, ctx: ssl.SSLContext | None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


# --- command line --------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    plane = ControlPlane(Path(args.state), Path("."), attached=False)
    if plane.running():
        print(f"controlplane: already up ({plane.server}); 'make cluster-down' stops it")
        print(plane.kubeconfig)
        return 0
    if plane.state_dir.exists():
        print(f"controlplane: removing stale {plane.state_dir}/ (its processes are gone)")
        plane.stop()
    plane.bin_dir = find_binaries(args.bin_dir, binary_set="controlplane")
    started = time.monotonic()
    try:
        plane.start()
    except ControlPlaneError:
        plane.stop()
        raise
    print(f"controlplane: up in {time.monotonic() - started:.1f}s at {plane.server}")
    print(f"controlplane: KUBECONFIG={plane.kubeconfig} {plane.bin_dir}/kubectl get ns")
    print(plane.kubeconfig)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    plane = ControlPlane(Path(args.state), Path("."), attached=False)
    if not plane.state_dir.exists():
        print("controlplane: not running")
        return 0
    plane.stop()
    shutil.rmtree(plane.state_dir, ignore_errors=True)
    print("controlplane: stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--state", default=".cluster", help="state folder (default .cluster)")
    parser.add_argument("--bin-dir", help="folder with the binaries (default: build or reuse)")
    args = parser.parse_args(argv)
    try:
        return cmd_up(args) if args.command == "up" else cmd_down(args)
    except ControlPlaneError as err:
        print(f"controlplane: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("controlplane: interrupted; run 'make cluster-down' to clean up", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
