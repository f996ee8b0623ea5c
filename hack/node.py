#!/usr/bin/env python3
"""Run a real Kubernetes node beside the local control plane, and take it down without a trace.

The control plane (hack/controlplane.py) has no node, so nothing it schedules
ever runs. Install tests need pods that really run: the operator's image, under
the chart's securityContext, reaching the API server through the `kubernetes`
Service. So this starts, as plain processes beside the control plane:

- containerd (Debian's), with its own config, root, state and socket in the
  state folder, runc as its runtime, and CNI's `bridge` + `host-local` plugins;
- kubelet, registered as node `localhost`, serving on 127.0.0.1 only;
- kube-scheduler, so that Deployments' pods get a node.

Nothing may leave the machine, and nothing may be pulled:

- pods live on a bridge made here (a unique name and /24), with no masquerade;
  guard rules in `mangle FORWARD` drop anything from the bridge or the pod
  range toward any other interface (mangle, so that no ACCEPT that something
  else puts in `filter FORWARD` can come first); forwarding is on for the
  bridge only, so the guard rules are what holds, and tests can prove it;
- pods get `nameserver 127.0.0.1`, their own loopback: no DNS;
- containerd's registry config points every public registry at a closed
  loopback port; images are imported from OCI archives (`import_image`),
  named `localhost/...`, and used with `imagePullPolicy: Never`.

The API server advertises 127.0.0.1, which it may not publish as the endpoint
of the `kubernetes` Service, so pods could not reach 10.0.0.1. One DNAT rule
sends the pod range's traffic for 10.0.0.1:443 to the API server's loopback
port (with `route_localnet` on the bridge), so in-cluster config works;
`expose(port)` does the same for any other loopback server (an S3 server).

Everything the node creates outside its state folder is recorded in
`state.json` as it is made, and `stop()` undoes it: processes (by PID),
containers, mounts, cgroups, the bridge, iptables rules, the sysctls kubelet
sets, and the files and folders containerd and kubelet leave in /run, /var/lib
and /var/log. It needs root.

    python hack/node.py up   --state .node --cluster .cluster   # after `make cluster-up`
    python hack/node.py down --state .node

The pytest session (tests/install/node_fixtures.py) runs its own, beside its own
control plane, with every child attached to the test process.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import ipaddress
import json
import os
import random
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from controlplane import (
    ControlPlane,
    ControlPlaneError,
    alive,
    build_binaries,
    die_with_parent,
    free_port,
    kubeconfig_yaml,
    stop_pid,
)
from ociarchive import ImageConfig, write_archive

HACK = Path(__file__).resolve().parent
NODE_NAME = "localhost"  # the API server reaches the kubelet (logs, exec) without DNS
PACKAGES = ("runc", "containerd", "containernetworking-plugins", "iptables", "iproute2")
PAUSE_PACKAGES = ("gcc", "libc6-dev")  # hack/pause/build.sh compiles a static binary
POD_RANGE = ipaddress.IPv4Network("10.244.0.0/16")  # one /24 of it per node
SERVICE_IP = "10.0.0.1"  # the `kubernetes` Service in the control plane's 10.0.0.0/24
CLOSED_PORT = "http://127.0.0.1:9"  # where every registry points: nothing listens there
REGISTRIES = (
    "docker.io",
    "registry-1.docker.io",
    "registry.k8s.io",
    "k8s.gcr.io",
    "gcr.io",
    "ghcr.io",
    "quay.io",
    "public.ecr.aws",
    "mcr.microsoft.com",
    "registry.gitlab.com",
    "localhost",
)
# kubelet sets these at start (protectKernelDefaults: false); stop() puts them back.
KUBELET_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
# Chains kubelet makes (and the rules that jump to them), for IPv4 and IPv6; removed
# when no other kubelet runs. KUBE-FIREWALL drops outside traffic to 127.0.0.0/8
# that was not DNATed there.
KUBELET_CHAINS = {
    "mangle": ("KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY"),
    "nat": ("KUBE-KUBELET-CANARY",),
    "filter": ("KUBE-KUBELET-CANARY", "KUBE-FIREWALL"),
}
# Paths outside the state folder that containerd, CNI and kubelet may create, deepest
# first; each is removed if this node made it and it is empty again.
CONTAINER_LOG_LINKS = Path("/var/log/containers")  # kubelet's legacy log symlinks
DEVICE_PLUGINS = Path("/var/lib/kubelet/device-plugins")  # kubelet's socket, hard-coded
SHARED_DIRS = (
    "/run/containerd/s",
    "/run/containerd",
    "/var/lib/cni/results",
    "/var/lib/cni",
    str(DEVICE_PLUGINS),
    str(DEVICE_PLUGINS.parent),
    str(CONTAINER_LOG_LINKS),
)


class NodeError(Exception):
    """A failure with a one-line message that says what to do."""


@dataclass
class NodeState:
    """What `start` made, written as it is made, so that `stop` (or `down`) can undo it."""

    bridge: str
    pod_cidr: str
    gateway: str
    cgroup_root: str
    apiserver_port: int
    kubelet_port: int = 0
    kubelet_healthz_port: int = 0
    scheduler_port: int = 0
    pids: dict[str, int] = field(default_factory=dict)
    rules: list[list[str]] = field(default_factory=list)  # [binary, table, chain, *spec]
    sysctls: dict[str, str] = field(default_factory=dict)  # path under /proc/sys -> value
    absent_before: list[str] = field(default_factory=list)  # shared paths that did not exist
    chains_existed: list[str] = field(default_factory=list)  # "binary/table/chain" before
    packages: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


# --- small helpers ---------------------------------------------------------------------------


def run(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise NodeError with its stderr."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise NodeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def read_sysctl(path: str) -> str:
    return Path("/proc/sys", path).read_text().strip()


def write_sysctl(path: str, value: str) -> None:
    Path("/proc/sys", path).write_text(value + "\n")


def other_processes(name: str, exclude: set[int]) -> list[int]:
    """PIDs of running processes called `name`, other than those in `exclude`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        with contextlib.suppress(OSError):
            if (entry / "comm").read_text().strip() == name and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def remove_chain(binary: str, table: str, chain: str) -> None:
    """Delete the rules that jump to a chain, then the chain; nothing if it does not exist."""
    listing = run(binary, "-w", "10", "-t", table, "-S", check=False).stdout.splitlines()
    if f"-N {chain}" not in listing:
        return
    for line in listing:
        words = shlex.split(line)
        if words[:1] == ["-A"] and words[-2:] == ["-j", chain]:
            run(binary, "-w", "10", "-t", table, "-D", *words[1:])
    run(binary, "-w", "10", "-t", table, "-F", chain)
    run(binary, "-w", "10", "-t", table, "-X", chain)


def mounts_under(root: Path) -> list[str]:
    """Mount points at or under root, deepest first (from /proc/self/mountinfo)."""
    prefix = str(root.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return sorted(found, key=lambda p: p.count("/"), reverse=True)


def cgroup_mounts() -> list[Path]:
    """Every cgroup (v1 and v2) hierarchy's mount point."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        if after.split()[0] in ("cgroup", "cgroup2"):
            found.append(Path(before.split()[4]))
    return found


def package_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed Debian package versions; missing ones are left out."""
    done = run("dpkg-query", "-W", "-f=${Package} ${Status} ${Version}\n", *names, check=False)
    versions = {}
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[1:4] == ["install", "ok", "installed"]:
            versions[parts[0]] = parts[4]
    return versions


def ensure_packages(names: tuple[str, ...]) -> dict[str, str]:
    """Install the Debian packages that are missing (Debian's versions; nothing pinned)."""
    versions = package_versions(names)
    missing = [n for n in names if n not in versions]
    if missing:
        if not shutil.which("apt-get"):
            raise NodeError(f"missing packages {', '.join(missing)} and no apt-get to install them")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        lock = ("-o", "DPkg::Lock::Timeout=300")
        for cmd in (
            ["apt-get", *lock, "update", "-qq"],
            ["apt-get", *lock, "install", "-y", "-qq", "--no-install-recommends", *missing],
        ):
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
            if done.returncode != 0:
                raise NodeError(f"{' '.join(cmd)} failed: {done.stderr.strip()[-2000:]}")
        versions = package_versions(names)
        still = [n for n in names if n not in versions]
        if still:
            raise NodeError(f"apt-get did not install {', '.join(still)}")
    return versions


def cni_bin_dir() -> Path:
    for candidate in (Path("/usr/lib/cni"), Path("/opt/cni/bin")):
        if (candidate / "bridge").exists() and (candidate / "host-local").exists():
            return candidate
    raise NodeError("no CNI plugins (bridge, host-local) in /usr/lib/cni or /opt/cni/bin")


def pick_network(rng: random.Random) -> tuple[str, ipaddress.IPv4Network]:
    """A bridge name and a /24 of POD_RANGE that nothing on this machine uses yet."""
    taken_links = set(run("ip", "-o", "link", "show").stdout.split())
    used: list[ipaddress.IPv4Network] = []
    for line in run("ip", "-4", "-o", "route", "show", "table", "all").stdout.splitlines():
        with contextlib.suppress(ValueError):  # "default ...", "local ...": not a prefix
            used.append(ipaddress.IPv4Network(line.split()[0], strict=False))
    for line in run("ip", "-4", "-o", "addr", "show").stdout.splitlines():
        used.append(ipaddress.IPv4Network(line.split()[3], strict=False))
    subnets = list(POD_RANGE.subnets(new_prefix=24))[1:]  # .0.0/24 is every tutorial's
    rng.shuffle(subnets)
    for subnet in subnets:
        if not any(subnet.overlaps(u) for u in used if u.prefixlen > 0):
            break
    else:
        raise NodeError(f"every /24 of {POD_RANGE} is in use on this machine")
    while True:
        name = f"dn{rng.getrandbits(32):08x}"  # 10 characters; the kernel allows 15
        if f"{name}:" not in taken_links:
            return name, subnet


# --- certificates ----------------------------------------------------------------------------


def issue_cert(
    pki: Path, out: Path, common_name: str, org: str | None, sans: list[x509.GeneralName]
) -> None:
    """A key and a certificate signed by the control plane's CA: out.crt and out.key."""
    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, rsa.RSAPrivateKey)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    out.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    out.with_suffix(".key").chmod(0o600)


# --- configuration ---------------------------------------------------------------------------


def cni_config(state: NodeState, ipam_dir: Path) -> dict[str, Any]:
    """One bridge network; the bridge and its address are made beforehand (see Node._network).

    isGateway is off, so the plugin neither sets the address nor switches on
    forwarding for the whole machine; pods still route through the gateway.
    """
    return {
        "cniVersion": "1.0.0",
        "name": state.bridge,
        "plugins": [
            {
                "type": "bridge",
                "bridge": state.bridge,
                "isGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": state.pod_cidr, "gateway": state.gateway}]],
                    "routes": [{"dst": "0.0.0.0/0", "gw": state.gateway}],
                    "dataDir": str(ipam_dir),
                },
            }
        ],
    }


def containerd_config(sd: Path, pause_image: str) -> str:
    """containerd with everything (root, state, socket, runc root, CNI, registries) under sd."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{sd}/containerd/root"
state = "{sd}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "{sd}/containerd.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "{sd}/containerd/opt"

[{cri}]
  sandbox_image = "{pause_image}"
  # no CAP_SYS_RESOURCE here: runc cannot set a negative oom_score_adj
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{sd}/runc"

[{cri}.cni]
  bin_dir = "{cni_bin_dir()}"
  conf_dir = "{sd}/cni/net.d"
  max_conf_num = 1

[{cri}.registry]
  config_path = "{sd}/certs.d"
"""


def kubelet_config(state: NodeState, sd: Path, client_ca: Path) -> dict[str, Any]:
    """The kubelet's KubeletConfiguration: loopback only, cgroupfs on v1, no DNS."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": "127.0.0.1",
        "port": state.kubelet_port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": state.kubelet_healthz_port,
        "tlsCertFile": str(sd / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(sd / "kubelet-serving.key"),
        # The API server calls the kubelet (logs, exec) with no client certificate
        # (it has no --kubelet-client-certificate), so the kubelet lets anonymous
        # callers in; it listens on 127.0.0.1 only.
        "authentication": {
            "anonymous": {"enabled": True},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(client_ca)},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "containerRuntimeEndpoint": f"unix://{sd}/containerd.sock",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": state.cgroup_root,
        "failCgroupV1": False,
        "failSwapOn": False,
        # Pods get nameserver 127.0.0.1, their own loopback: no DNS, and no
        # MissingClusterDNS warning for every pod.
        "resolvConf": str(sd / "resolv.conf"),
        "clusterDNS": ["127.0.0.1"],
        "clusterDomain": "cluster.local",
        "podLogsDir": str(sd / "pod-logs"),
        "registerNode": True,
        "serializeImagePulls": False,
        # Never collect images (nothing could pull them back) and never evict.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "nodeStatusUpdateFrequency": "4s",
        "shutdownGracePeriod": "0s",
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
    }


# --- the node --------------------------------------------------------------------------------


class Node:
    """containerd + kubelet + kube-scheduler, their network and their state in one folder."""

    def __init__(
        self,
        state_dir: Path,
        bin_dir: Path,
        *,
        server: str,
        pki: Path,
        attached: bool = True,
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.bin_dir = bin_dir
        self.server = server  # https://127.0.0.1:PORT
        self.pki = pki  # the control plane's: ca.crt, ca.key, admin.crt, admin.key
        self.attached = attached  # attached: children die with this process
        self.name = NODE_NAME
        self.state: NodeState | None = None
        self.pause_image = ""  # localhost/pause:TAG, set by start()
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    # what tests use
    @property
    def bridge(self) -> str:
        return self._state.bridge

    @property
    def pod_cidr(self) -> str:
        return self._state.pod_cidr

    @property
    def gateway(self) -> str:
        """The bridge's address: the node as pods see it."""
        return self._state.gateway

    @property
    def kubernetes_service(self) -> tuple[str, int]:
        """Where pods reach the API server: the `kubernetes` Service (KUBERNETES_SERVICE_*)."""
        return SERVICE_IP, 443

    @property
    def timings(self) -> dict[str, float]:
        return dict(self._state.timings)

    @property
    def log(self) -> Path:
        return self.state_dir / "node.log"

    @property
    def containerd_socket(self) -> Path:
        return self.state_dir / "containerd.sock"

    def ctr(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """containerd's own client on this node's socket, in the namespace CRI uses."""
        address = str(self.containerd_socket)
        return run("ctr", "--address", address, "-n", "k8s.io", *args, timeout=timeout, check=check)

    def images(self) -> list[str]:
        return self.ctr("images", "list", "-q").stdout.split()

    def import_image(self, archive: Path, name: str | None = None) -> list[str]:
        """Import an OCI (or docker) archive; return the image names it brought.

        Names come from the archive's index (`io.containerd.image.name`, or a full
        `org.opencontainers.image.ref.name` as buildah writes it). Given `name`, the
        import must bring it; an archive that names nothing gets it as a tag.
        """
        args = ["images", "import"]
        if name:  # ctr keeps a full reference name only under a matching base name
            args += ["--base-name", name.rsplit(":", 1)[0]]
        done = self.ctr(*args, str(archive), timeout=600)
        self._log(f"import {archive.name}: {done.stdout.strip()}")
        if name and name not in self.images():
            # Nothing in the archive names the image: keep its index under the name.
            done = self.ctr(*args, "--index-name", name, str(archive), timeout=600)
            self._log(f"import {archive.name} as {name}: {done.stdout.strip()}")
            if name not in self.images():
                raise NodeError(f"importing {archive} did not bring {name}: {done.stdout.strip()}")
        return sorted(i for i in self.images() if i in done.stdout or i == name)

    def expose(self, port: int) -> tuple[str, int]:
        """Let pods reach a server on the host's 127.0.0.1:port at (gateway, port)."""
        self._dnat(self.gateway, port, f"127.0.0.1:{port}")
        return self.gateway, port

    def guard_drops(self) -> int:
        """Packets the guard rules dropped so far: pods' attempts to leave the machine."""
        total = 0
        for binary in ("iptables", "ip6tables"):
            listing = run(binary, "-w", "10", "-t", "mangle", "-L", "FORWARD", "-v", "-x", "-n")
            for line in listing.stdout.splitlines():
                if self._comment in line and "DROP" in line:
                    total += int(line.split()[0])
        return total

    # lifecycle
    @property
    def _state(self) -> NodeState:
        if self.state is None:
            raise NodeError("the node is not started")
        return self.state

    @property
    def _comment(self) -> str:
        return f"destination-operator node {self._state.bridge}"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    def load(self) -> NodeState | None:
        if not self.state_file.exists():
            return None
        try:
            self.state = NodeState(**json.loads(self.state_file.read_text()))
        except (ValueError, TypeError):
            return None
        return self.state

    def _save(self) -> None:
        self.state_file.write_text(json.dumps(asdict(self._state), indent=2) + "\n")

    def _log(self, message: str) -> None:
        stamp = datetime.datetime.now().strftime("%H:%M:%S.%f")[:-3]
        with self.log.open("a") as out:
            out.write(f"{stamp} {message}\n")

    def _mark(self, name: str, since: float) -> None:
        self._state.timings[name] = round(time.monotonic() - since, 2)
        self._log(f"{name}: {self._state.timings[name]}s")
        self._save()

    def start(self, timeout: float = 120.0) -> None:
        """Bring the node up and wait until it is Ready; on failure undo what was done."""
        if os.geteuid() != 0:
            raise NodeError("the node needs root (network, mounts, cgroups, containerd)")
        missing = [b for b in ("kubelet", "kube-scheduler") if not (self.bin_dir / b).exists()]
        if missing:
            raise NodeError(
                f"{', '.join(missing)} missing in {self.bin_dir}; run hack/build-binaries.sh"
            )
        try:
            self._start(time.monotonic() + timeout)
        except BaseException as err:
            with contextlib.suppress(OSError):
                self._log(f"start failed ({err}); undoing")
            try:
                self.stop()
            except NodeError as undo:
                raise NodeError(f"{err}; and undoing it failed: {undo}") from err
            raise

    def _start(self, deadline: float) -> None:
        started = time.monotonic()
        if mounts_under(self.state_dir):
            raise NodeError(f"{self.state_dir} still has mounts of an earlier node; run 'down'")
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
        self.state_dir.mkdir(parents=True)
        port = int(self.server.rsplit(":", 1)[1])
        bridge, subnet = pick_network(random.Random())
        hosts = list(subnet.hosts())
        self.state = NodeState(
            bridge=bridge,
            pod_cidr=str(subnet),
            gateway=str(hosts[0]),
            cgroup_root=f"/{bridge}",
            apiserver_port=port,
            absent_before=[
                p
                for p in (str(DEVICE_PLUGINS / "kubelet.sock"), *SHARED_DIRS)
                if not os.path.lexists(p)
            ],
            chains_existed=self._existing_kubelet_chains(),
            sysctls={s: read_sysctl(s) for s in KUBELET_SYSCTLS},
        )
        self._save()
        step = time.monotonic()
        self._state.packages = ensure_packages(PACKAGES + PAUSE_PACKAGES)
        self._log("packages: " + ", ".join(f"{k} {v}" for k, v in self._state.packages.items()))
        self._mark("packages", step)

        step = time.monotonic()
        pause = self._pause_archive()
        self._mark("pause image", step)

        step = time.monotonic()
        self._network()
        self._cgroups()
        self._mark("network and cgroups", step)

        step = time.monotonic()
        self._write_configs()
        self._bind_nodes_group()
        self._spawn(
            "containerd", ["containerd", "--config", str(self.state_dir / "containerd.toml")]
        )
        self._wait("containerd", deadline, self._containerd_ready)
        self.import_image(pause)
        self._mark("containerd", step)

        step = time.monotonic()
        self._forget_old_node()
        self._spawn(
            "kube-scheduler", [str(self.bin_dir / "kube-scheduler"), *self._scheduler_args()]
        )
        self._spawn("kubelet", [str(self.bin_dir / "kubelet"), *self._kubelet_args()])
        self._wait("kubelet", deadline, self._node_ready)
        self._mark("kubelet to Ready", step)
        self._wait("kube-scheduler", deadline, self._scheduler_ready)
        self._mark("start", started)

    # setup steps
    def _pause_archive(self) -> Path:
        done = subprocess.run(
            ["bash", str(HACK / "pause" / "build.sh")], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise NodeError(f"building the pause binary failed: {done.stderr.strip()}")
        binary = Path(done.stdout.strip().splitlines()[-1])
        tag = (binary.parent.parent / "tag").read_text().strip()
        self.pause_image = f"localhost/pause:{tag}"
        archive = self.state_dir / "pause.tar"
        # As Kubernetes' own pause image: the binary alone, run as 65535.
        write_archive(
            archive, self.pause_image, binary=binary, config=ImageConfig(user="65535:65535")
        )
        return archive

    def _add_rule(self, binary: str, table: str, chain: str, match: str, target: str) -> None:
        """Insert a rule at the top of its chain, with a comment naming this node."""
        comment = ["-m", "comment", "--comment", self._comment]
        rule = [binary, table, chain, *match.split(), *comment, *target.split()]
        self._state.rules.append(rule)
        self._save()  # recorded first: a half-made rule is removed with the rest
        run(rule[0], "-w", "10", "-t", rule[1], "-I", rule[2], "1", *rule[3:])

    def _dnat(self, dst: str, port: int, to: str) -> None:
        """Send the pods' TCP traffic for dst:port to `to` (a loopback address:port)."""
        match = f"-i {self.bridge} -s {self.pod_cidr} -d {dst} -p tcp --dport {port}"
        self._add_rule("iptables", "nat", "PREROUTING", match, f"-j DNAT --to-destination {to}")

    def _network(self) -> None:
        br, cidr, gw = self.bridge, self.pod_cidr, self.gateway
        prefix = ipaddress.ip_network(cidr).prefixlen
        self._log(f"bridge {br}, pods {cidr}, gateway {gw}")
        # The guard comes first, before there is a bridge or a pod.
        for src in (f"-i {br}", f"-s {cidr}"):
            self._add_rule("iptables", "mangle", "FORWARD", f"{src} ! -o {br}", "-j DROP")
        self._add_rule("ip6tables", "mangle", "FORWARD", f"-i {br} ! -o {br}", "-j DROP")
        run("ip", "link", "add", br, "type", "bridge")
        write_sysctl(f"net/ipv6/conf/{br}/disable_ipv6", "1")
        run("ip", "addr", "add", f"{gw}/{prefix}", "dev", br)
        # Two nodes starting at once could both have chosen this /24.
        for line in run("ip", "-4", "-o", "addr", "show").stdout.splitlines():
            words = line.split()
            if words[1] != br and ipaddress.ip_interface(words[3]).network.overlaps(
                ipaddress.ip_network(cidr)
            ):
                raise NodeError(f"{words[1]} took {cidr} at the same time; run again")
        # route_localnet: traffic from pods may be DNATed to 127.0.0.1 (the API server).
        write_sysctl(f"net/ipv4/conf/{br}/route_localnet", "1")
        # Forwarding for packets that arrive on this bridge only (IPv4 decides by the
        # input device), so that the guard rules, not a routing error, stop them.
        write_sysctl(f"net/ipv4/conf/{br}/forwarding", "1")
        run("ip", "link", "set", br, "up")
        self._dnat(SERVICE_IP, 443, f"127.0.0.1:{self._state.apiserver_port}")

    def _cgroups(self) -> None:
        """kubelet wants its cgroup root to exist in every hierarchy; a unique one per node."""
        for mount in cgroup_mounts():
            path = mount / self._state.cgroup_root.lstrip("/")
            path.mkdir(exist_ok=True)
            for name in ("cpuset.cpus", "cpuset.mems"):  # empty in a new v1 cpuset
                if (mount / name).exists() and not (path / name).read_text().strip():
                    (path / name).write_text((mount / name).read_text())

    def _write_configs(self) -> None:
        state, sd = self._state, self.state_dir
        for folder in ("cni/net.d", "cni/ipam", "certs.d", "kubelet", "pod-logs", "scheduler"):
            (sd / folder).mkdir(parents=True, exist_ok=True)
        (sd / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        for registry in REGISTRIES:
            (sd / "certs.d" / registry).mkdir()
            (sd / "certs.d" / registry / "hosts.toml").write_text(
                f'server = "{CLOSED_PORT}"\n\n[host."{CLOSED_PORT}"]\n'
                '  capabilities = ["pull", "resolve"]\n'
            )
        (sd / "cni/net.d/10-node.conflist").write_text(
            json.dumps(cni_config(state, sd / "cni/ipam"), indent=2) + "\n"
        )
        (sd / "containerd.toml").write_text(containerd_config(sd, self.pause_image))
        issue_cert(self.pki, sd / "kubelet-client", f"system:node:{NODE_NAME}", "system:nodes", [])
        loopback = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
        issue_cert(
            self.pki, sd / "kubelet-serving", NODE_NAME, None, [x509.DNSName(NODE_NAME), loopback]
        )
        ca = (self.pki / "ca.crt").read_bytes()
        for name, user, cert in (
            ("kubelet", "kubelet", sd / "kubelet-client"),
            ("scheduler", "admin", self.pki / "admin"),
        ):
            files = {"client-certificate": f"{cert}.crt", "client-key": f"{cert}.key"}
            (sd / f"{name}.kubeconfig").write_text(kubeconfig_yaml(self.server, ca, files, user))
        state.kubelet_port, state.kubelet_healthz_port = free_port(), free_port()
        state.scheduler_port = free_port()
        config = kubelet_config(state, sd, self.pki / "ca.crt")
        (sd / "kubelet.yaml").write_text(json.dumps(config, indent=2) + "\n")
        self._save()

    def _bind_nodes_group(self) -> None:
        """RBAC is the only authorizer: nodes get the system:node role through their group."""
        body = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "destination-operator-test:system:nodes"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:node",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"}
            ],
        }
        status, _ = self._api(
            "POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", body
        )
        if status not in (201, 409):
            raise NodeError(f"creating the system:nodes binding answered {status}")

    def _forget_old_node(self) -> None:
        """A Node left by an earlier kubelet still says Ready; the new one must say it anew."""
        status, _ = self._api("DELETE", f"/api/v1/nodes/{NODE_NAME}")
        if status not in (200, 404):
            raise NodeError(f"deleting the stale node {NODE_NAME} answered {status}")

    def _scheduler_args(self) -> list[str]:
        kubeconfig = str(self.state_dir / "scheduler.kubeconfig")
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self._state.scheduler_port}",
            f"--cert-dir={self.state_dir / 'scheduler'}",
            "--leader-elect=false",
        ]

    def _kubelet_args(self) -> list[str]:
        return [
            f"--config={self.state_dir / 'kubelet.yaml'}",
            f"--kubeconfig={self.state_dir / 'kubelet.kubeconfig'}",
            f"--root-dir={self.state_dir / 'kubelet'}",
            f"--hostname-override={NODE_NAME}",
            # The bridge's address: what the node is to its pods (hostNetwork pods' IP).
            f"--node-ip={self.gateway}",
            "--v=1",
        ]

    # processes
    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.state_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent if self.attached else None,
            start_new_session=not self.attached,
        )
        log.close()
        self._procs[name] = proc
        self._state.pids[name] = proc.pid
        self._save()

    def _wait(self, name: str, deadline: float, ready: Callable[[], bool]) -> None:
        proc = self._procs[name]
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise NodeError(
                    f"{name} exited with code {proc.returncode}: {self._log_tail(name)}"
                    f" (full log: {self.state_dir / (name + '.log')})"
                )
            if ready():
                return
            time.sleep(0.1)
        raise NodeError(f"{name} was not ready in time; see {self.state_dir / (name + '.log')}")

    def _log_tail(self, name: str) -> str:
        path = self.state_dir / f"{name}.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        errors = [line for line in lines if line.startswith("E") or "error" in line.lower()]
        return (errors or lines or ["no output"])[-1][-600:]

    def _containerd_ready(self) -> bool:
        if not self.containerd_socket.exists():
            return False
        done = subprocess.run(
            ["ctr", "--address", str(self.containerd_socket), "version"],
            capture_output=True,
            timeout=10,
        )
        return done.returncode == 0

    def _scheduler_ready(self) -> bool:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # its serving cert is self-signed at start
        url = f"https://127.0.0.1:{self._state.scheduler_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _node_ready(self) -> bool:
        status, node = self._api("GET", f"/api/v1/nodes/{NODE_NAME}")
        if status != 200:
            return False
        conditions = node.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _api(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        """One call to the API server as the control plane's admin."""
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.server + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10, context=ctx) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, {}
        except (urllib.error.URLError, OSError):
            return 0, {}

    # teardown
    def stop(self) -> None:
        """Undo everything start() did, in reverse; safe to call twice and after a crash."""
        state = self.state or self.load()
        if state is None:
            return
        started = time.monotonic()
        pids = dict(state.pids)
        pids.update({name: proc.pid for name, proc in self._procs.items()})
        problems: list[str] = []

        def attempt(what: str, action: Callable[[], None]) -> None:
            try:
                action()
            except (NodeError, OSError, subprocess.SubprocessError) as err:
                problems.append(f"{what}: {err}")

        def stop_own(name: str) -> None:
            # A PID from state.json may since belong to another process: check its name.
            with contextlib.suppress(OSError):
                if name in pids and Path(f"/proc/{pids[name]}/comm").read_text().strip() == name:
                    stop_pid(pids[name])

        stop_own("kubelet")
        attempt("containers", self._kill_containers)
        stop_own("containerd")
        attempt("shims", self._kill_shims)
        stop_own("kube-scheduler")
        attempt("cgroup processes", self._kill_cgroup_processes)
        attempt("mounts", self._unmount_all)
        attempt("cgroups", self._remove_cgroups)
        attempt("rules", self._remove_rules)
        attempt("bridge", self._remove_bridge)
        attempt("kubelet leftovers", lambda: self._remove_kubelet_traces(set(pids.values())))
        attempt("host files", self._remove_host_files)
        self._procs.clear()
        state.pids.clear()
        if self.state_dir.exists():
            self._save()
            self._log(f"stopped in {time.monotonic() - started:.2f}s")
        if problems:
            raise NodeError("teardown left things behind: " + "; ".join(problems))

    def _kill_containers(self) -> None:
        """Every task of this containerd, killed and deleted, so that its shims exit."""
        if not self.containerd_socket.exists():
            return
        listing = self.ctr("tasks", "list", timeout=30, check=False).stdout.splitlines()
        for task in [line.split()[0] for line in listing[1:] if line.strip()]:
            self.ctr("tasks", "delete", "--force", task, timeout=30, check=False)

    def _kill_shims(self) -> None:
        """containerd's shims outlive it; they carry its socket address on their command line."""
        address = str(self.containerd_socket)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if (
                cmdline
                and cmdline[0].endswith(b"containerd-shim-runc-v2")
                and (address.encode() in cmdline)
            ):
                stop_pid(int(entry.name), timeout=5)

    def _cgroup_dirs(self) -> list[Path]:
        """This node's cgroup folders in every hierarchy, deepest first."""
        state = self.state or self.load()
        if state is None:
            return []
        root = state.cgroup_root.lstrip("/")
        found: list[Path] = []
        for mount in cgroup_mounts():
            top = mount / root
            if top.is_dir():
                found.extend(Path(p) for p, _, _ in os.walk(top))
        return sorted(found, key=lambda p: len(p.parts), reverse=True)

    def _kill_cgroup_processes(self) -> None:
        """Whatever still runs in this node's cgroups is a container process of this node."""
        for _ in range(50):
            pids: set[int] = set()
            for folder in self._cgroup_dirs():
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in (folder / "cgroup.procs").read_text().split())
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        raise NodeError(f"processes {sorted(pids)} survive in the node's cgroups")

    def _unmount_all(self) -> None:
        if not self.state_dir.exists():
            return
        for _ in range(20):  # mounts stack (kubelet bind-mounts its root onto itself)
            points = mounts_under(self.state_dir)
            if not points:
                return
            for point in points:
                done = subprocess.run(["umount", point], capture_output=True)
                if done.returncode != 0:
                    subprocess.run(["umount", "-l", point], capture_output=True)
        raise NodeError(f"still mounted: {mounts_under(self.state_dir)}")

    def _remove_cgroups(self) -> None:
        for folder in self._cgroup_dirs():
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # busy for a moment after its last process died
                    time.sleep(0.1)
            else:
                raise NodeError(f"cannot remove cgroup {folder}")

    def _remove_rules(self) -> None:
        state = self.state or self.load()
        if state is None:
            return
        # The DNAT rules first, the guard last: nothing is ever unguarded.
        for rule in sorted(state.rules, key=lambda r: r[2] == "FORWARD"):
            binary, table, chain, *spec = rule
            while (
                run(binary, "-w", "10", "-t", table, "-C", chain, *spec, check=False).returncode
                == 0
            ):
                run(binary, "-w", "10", "-t", table, "-D", chain, *spec)
        state.rules.clear()

    def _remove_bridge(self) -> None:
        state = self.state or self.load()
        if state and Path(f"/sys/class/net/{state.bridge}").exists():
            run("ip", "link", "delete", state.bridge)

    def _remove_host_files(self) -> None:
        """What containerd, CNI and kubelet wrote outside the state folder."""
        state = self.state or self.load()
        if state is None:
            return
        # CNI caches each attachment as NETWORK-SANDBOX-IFNAME (the loopback's too);
        # killed sandboxes never had their DEL, so their entries go here.
        results = Path("/var/lib/cni/results")
        sandboxes = self.state_dir / "containerd/root/io.containerd.grpc.v1.cri/sandboxes"
        if results.is_dir() and sandboxes.is_dir():
            for sandbox in sandboxes.iterdir():
                for path in results.glob(f"*-{sandbox.name}-*"):
                    path.unlink(missing_ok=True)
        if CONTAINER_LOG_LINKS.is_dir():
            for link in CONTAINER_LOG_LINKS.iterdir():
                if link.is_symlink() and os.readlink(link).startswith(str(self.state_dir)):
                    link.unlink()
        for folder in state.absent_before:  # deepest first; only if empty: others may use it
            if os.path.isdir(folder) and not os.path.islink(folder):
                with contextlib.suppress(OSError):
                    Path(folder).rmdir()

    def _remove_kubelet_traces(self, ours: set[int]) -> None:
        """The sysctls and iptables chains kubelet sets, unless another kubelet runs."""
        state = self.state or self.load()
        if state is None or other_processes("kubelet", ours):
            return
        for path, value in state.sysctls.items():
            if read_sysctl(path) != value:
                write_sysctl(path, value)
        socket = DEVICE_PLUGINS / "kubelet.sock"
        if str(socket) in state.absent_before:
            socket.unlink(missing_ok=True)
        for binary in ("iptables", "ip6tables"):
            for table, chains in KUBELET_CHAINS.items():
                for chain in chains:
                    if f"{binary}/{table}/{chain}" not in state.chains_existed:
                        remove_chain(binary, table, chain)

    def _existing_kubelet_chains(self) -> list[str]:
        found = []
        for binary in ("iptables", "ip6tables"):
            for table, chains in KUBELET_CHAINS.items():
                for chain in chains:
                    done = run(binary, "-w", "10", "-t", table, "-S", chain, check=False)
                    if done.returncode == 0:
                        found.append(f"{binary}/{table}/{chain}")
        return found


# --- command line ----------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    plane = ControlPlane(Path(args.cluster), Path("."), attached=False)
    if not plane.running():
        raise NodeError(f"no control plane runs in {args.cluster}; run 'make cluster-up' first")
    node = Node(
        Path(args.state),
        Path(args.bin_dir or "."),
        server=plane.server,
        pki=plane.pki,
        attached=False,
    )
    if node.load() and all(alive(p) for p in node._state.pids.values()) and node._state.pids:
        print(f"node: already up (bridge {node.bridge}); 'python hack/node.py down' stops it")
        return 0
    if node.state_dir.exists():
        print(f"node: cleaning up a stale {node.state_dir}/")
        node.stop()
    if not args.bin_dir:
        try:
            node.bin_dir = build_binaries()
        except ControlPlaneError as err:
            raise NodeError(str(err)) from None
    node.start()
    print(
        f"node: {NODE_NAME} Ready in {node.timings['start']}s; bridge {node.bridge}, "
        f"pods {node.pod_cidr}, log {node.log}"
    )
    print(f"node: KUBECONFIG={plane.kubeconfig} kubectl get node -o wide")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    node = Node(Path(args.state), Path("."), server="https://127.0.0.1:0", pki=Path("."))
    if node.load() is None:
        print("node: not running")
        return 0
    node.stop()
    shutil.rmtree(node.state_dir, ignore_errors=True)
    print("node: stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--state", default=".node", help="state folder (default .node)")
    parser.add_argument("--cluster", default=".cluster", help="the control plane's state folder")
    parser.add_argument("--bin-dir", help="folder with kubelet and kube-scheduler")
    args = parser.parse_args(argv)
    try:
        return cmd_up(args) if args.command == "up" else cmd_down(args)
    except NodeError as err:
        print(f"node: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("node: interrupted; run 'python hack/node.py down' to clean up", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
