"""The operator image, built from the Dockerfile by hack/image.py, checked without a node.

The OCI archive is what containerd imports, so the tests read it directly: its name, its
config, and its layers unpacked into a root filesystem. That filesystem is then run the way
a kubelet runs the chart's pod (read-only root, uid 65532, every capability dropped, an
empty /tmp) by runc itself, with no container engine in between.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import stat
import subprocess
import tarfile
import time
import tomllib
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import image
from controlplane import free_port
from harness import Cluster
from s3server import S3Server

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parents[2]
USER = "65532:65532"
OPERATOR_NAMESPACE = "destination-operator-system"
OPERATOR_SA = "destination-operator"
# Executables that would mean a toolchain or a package installer reached the final stage.
BUILD_TOOLS = (
    "gcc", "cc", "c++", "g++", "cpp", "clang", "ld", "as", "make", "cmake",
    "pip", "pip3", "pip3.11", "python3-config", "python3.11-config",
)  # fmt: skip
BUILD_PACKAGES = ("gcc", "g++", "make", "binutils", "libc6-dev", "python3-dev", "python3-pip")


@pytest.fixture(scope="module")
def built() -> image.Built:
    """The operator's archive: from the cache, or built now (minutes when cold)."""
    try:
        return image.build()
    except image.ImageError as err:
        pytest.fail(f"the image could not be built: {err}")


@pytest.fixture(scope="module")
def config(built: image.Built) -> dict[str, Any]:
    _, body = image.read_config(built.archive)
    return dict(body)


@pytest.fixture(scope="module")
def rootfs(built: image.Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's layers applied in order, whiteouts honoured, owners kept (as root)."""
    root = tmp_path_factory.mktemp("image") / "rootfs"
    root.mkdir()
    for layer in image.iter_layers(built.archive):
        for member in layer:
            _apply(layer, member, root)
    return root


def _apply(layer: tarfile.TarFile, member: tarfile.TarInfo, root: Path) -> None:
    path = root / member.name
    # A parent that resolves elsewhere (an absolute symlink) would write on the host.
    if not path.parent.resolve().is_relative_to(root.resolve()):
        raise AssertionError(f"layer entry {member.name} escapes the root filesystem")
    if path.name == ".wh..wh..opq":
        for child in path.parent.iterdir():
            _remove(child)
        return
    if path.name.startswith(".wh."):
        _remove(path.with_name(path.name.removeprefix(".wh.")))
        return
    if (path.exists() or path.is_symlink()) and not (member.isdir() and path.is_dir()):
        _remove(path)
    layer.extract(member, root, numeric_owner=True, filter="fully_trusted")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


# --- running the root filesystem with runc ---------------------------------------------


@dataclass
class Container:
    """One runc container over the unpacked image; stopped and deleted by `close`."""

    state: Path
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        """Everything the container printed so far (a file: a full pipe would block it)."""
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float) -> tuple[int, str]:
        """Wait for it to exit; the exit code and its output."""
        code = self.proc.wait(timeout=timeout)
        return code, self.output()

    def stop(self, timeout: float = 20) -> tuple[int, str]:
        """SIGTERM, as a kubelet sends it; the exit code and its output."""
        subprocess.run(self._runc("kill", self.name, "TERM"), capture_output=True, timeout=30)
        return self.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            subprocess.run(self._runc("kill", self.name, "KILL"), capture_output=True, timeout=30)
            self.proc.wait(timeout=30)
        subprocess.run(self._runc("delete", "--force", self.name), capture_output=True, timeout=30)

    def _runc(self, *args: str) -> list[str]:
        return ["runc", "--root", str(self.state), *args]


def _spec(
    rootfs: Path,
    config: dict[str, Any],
    args: Sequence[str],
    *,
    env: dict[str, str],
    binds: dict[str, Path],
    host_network: bool,
) -> dict[str, Any]:
    """An OCI runtime spec shaped like the chart's pod: what a kubelet would ask runc for."""
    uid, gid = (int(part) for part in config["config"]["User"].split(":"))
    image_env = dict(item.split("=", 1) for item in config["config"].get("Env", []))
    namespaces = ["pid", "ipc", "uts", "mount"] + ([] if host_network else ["network"])
    caps: dict[str, list[str]] = {
        kind: [] for kind in ("bounding", "effective", "permitted", "inheritable", "ambient")
    }
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": uid, "gid": gid},
            "args": list(args),
            "env": [f"{k}={v}" for k, v in {**image_env, **env}.items()],
            "cwd": config["config"].get("WorkingDir") or "/",
            "capabilities": caps,
            "noNewPrivileges": True,
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 4096}],
        },
        "root": {"path": str(rootfs), "readonly": True},
        "hostname": "destination-operator",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
            # The chart's emptyDir.
            {
                "destination": "/tmp",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=1777", "size=65536k"],
            },
            *(
                {
                    "destination": dest,
                    "type": "bind",
                    "source": str(src),
                    "options": ["rbind", "ro"],
                }
                for dest, src in binds.items()
            ),
        ],
        "linux": {
            "namespaces": [{"type": kind} for kind in namespaces],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys"],
        },
    }


@pytest.fixture
def start(rootfs: Path, config: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    """start(args, env=, binds=, host_network=) -> Container; all are removed afterwards."""
    started: list[Container] = []

    def _start(
        args: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        binds: dict[str, Path] | None = None,
        host_network: bool = False,
    ) -> Container:
        name = f"dop-image-test-{secrets.token_hex(4)}"
        bundle = tmp_path / name
        bundle.mkdir()
        spec = _spec(
            rootfs, config, args, env=env or {}, binds=binds or {}, host_network=host_network
        )
        (bundle / "config.json").write_text(json.dumps(spec))
        state = tmp_path / "runc"
        log = bundle / "output.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                ["runc", "--root", str(state), "run", "--bundle", str(bundle), name],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        container = Container(state, name, proc, log)
        started.append(container)
        return container

    yield _start
    for container in started:
        container.close()


def run_in_image(start: Any, args: Sequence[str], timeout: float = 120) -> str:
    """Run to completion in the image; fail with its output unless it exits 0."""
    container: Container = start(args)
    code, out = container.wait(timeout)
    assert code == 0, f"{' '.join(args)} exited {code}:\n{out}"
    return out


# --- the archive and its config ---------------------------------------------------------


def test_archive_names_the_image_for_containerd(built: image.Built) -> None:
    """`ctr images import` names it localhost/destination-operator:<version> with no flags."""
    version = image.project_version()
    [entry] = image.read_index(built.archive)["manifests"]
    assert entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert entry["annotations"] == {
        "io.containerd.image.name": f"localhost/destination-operator:{version}",
        "org.opencontainers.image.ref.name": version,
    }
    assert built.name == f"localhost/destination-operator:{version}"


def test_runs_as_a_numeric_non_root_user(config: dict[str, Any]) -> None:
    """A kubelet with runAsNonRoot can only check a numeric user; it must not be 0."""
    user = config["config"]["User"]
    assert re.fullmatch(r"\d+:\d+", user), user
    assert user == USER


def test_oci_labels_match_the_project(config: dict[str, Any]) -> None:
    labels = config["config"]["Labels"]
    with (ROOT / "pyproject.toml").open("rb") as f:
        project = tomllib.load(f)["project"]
    assert labels["org.opencontainers.image.version"] == project["version"]
    assert labels["org.opencontainers.image.licenses"] == project["license"]["text"]
    assert labels["org.opencontainers.image.source"].startswith("https://")


def test_dockerfile_defaults_match_the_project() -> None:
    """`docker build .` with no arguments labels the image as hack/image.py does."""
    text = (ROOT / "Dockerfile").read_text()
    defaults = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    assert defaults["VERSION"] == image.project_version()
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", defaults["BASE_IMAGE"])


def test_entrypoint_is_the_operator(config: dict[str, Any]) -> None:
    assert config["config"]["Entrypoint"] == ["/opt/venv/bin/destination-operator"]
    assert config["config"]["Cmd"] == ["run"]
    env = dict(item.split("=", 1) for item in config["config"]["Env"])
    assert env["HOME"] == "/tmp"  # the only writable place the chart gives
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"


def test_every_layer_has_history(built: image.Built, config: dict[str, Any]) -> None:
    """Layer caches (buildah's, BuildKit's) need one history entry per layer."""
    manifest, _ = image.read_config(built.archive)
    filled = [h for h in config["history"] if not h.get("empty_layer")]
    assert len(filled) == len(manifest["layers"]) == len(config["rootfs"]["diff_ids"])


def test_containerd_imports_it_under_its_name(built: image.Built, tmp_path: Path) -> None:
    """What the node does: `ctr images import` names (and unpacks) it with no flags.

    A containerd of the test's own (socket, root and state under tmp_path, no CRI) so that
    nothing of a node, or of anyone else's containerd, is touched.
    """
    image.ensure_tools(("containerd",))
    sock = tmp_path / "containerd.sock"
    (tmp_path / "config.toml").write_text(
        "version = 2\n"
        f'root = "{tmp_path / "root"}"\nstate = "{tmp_path / "state"}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{sock}"\n[ttrpc]\n  address = "{sock}.ttrpc"\n'
    )
    with (tmp_path / "containerd.log").open("wb") as log:
        daemon = subprocess.Popen(
            ["containerd", "--config", str(tmp_path / "config.toml")], stdout=log, stderr=log
        )
    ctr = ["ctr", "--address", str(sock), "--namespace", "k8s.io"]
    try:
        deadline = time.monotonic() + 30
        while not sock.exists() and time.monotonic() < deadline and daemon.poll() is None:
            time.sleep(0.1)
        assert sock.exists(), (tmp_path / "containerd.log").read_text()
        subprocess.run([*ctr, "images", "import", str(built.archive)], check=True, timeout=600)
        names = subprocess.run(
            [*ctr, "images", "ls", "--quiet"], check=True, capture_output=True, text=True
        ).stdout.split()
        assert names == [built.name]
        subprocess.run([*ctr, "images", "rm", built.name], check=True, capture_output=True)
        base_name = built.name.rsplit(":", 1)[0]
        subprocess.run(
            [*ctr, "images", "import", "--no-unpack", "--base-name", base_name, str(built.archive)],
            check=True,
            timeout=600,
        )
        names = subprocess.run(
            [*ctr, "images", "ls", "--quiet"], check=True, capture_output=True, text=True
        ).stdout.split()
        assert names == [built.name]
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)


# --- the filesystem ---------------------------------------------------------------------


def test_no_build_tools_in_the_final_image(rootfs: Path) -> None:
    found = [
        str(path.relative_to(rootfs))
        for folder in ("usr/local/bin", "usr/bin", "bin", "usr/sbin", "sbin", "opt/venv/bin")
        for path in (rootfs / folder).glob("*")
        if path.name in BUILD_TOOLS
    ]
    assert found == []
    packages = re.findall(r"^Package: (\S+)$", (rootfs / "var/lib/dpkg/status").read_text(), re.M)
    assert packages, "no dpkg database in the image"
    assert sorted(set(packages) & set(BUILD_PACKAGES)) == []
    site = next((rootfs / "opt/venv/lib").glob("python3*/site-packages"))
    assert sorted(p.name for p in site.glob("pip*")) == []
    assert not (rootfs / "opt/tools").exists()
    assert not (rootfs / "staging").exists() and not (rootfs / "src").exists()


def test_build_secret_and_host_certificates_stay_out(rootfs: Path) -> None:
    """The CA bundle pip used during the build (this host's) is not in any layer."""
    assert not (rootfs / "run/secrets").exists() or not any((rootfs / "run/secrets").iterdir())
    bundle = (rootfs / "etc/ssl/certs/ca-certificates.crt").read_text()
    assert bundle.count("BEGIN CERTIFICATE") > 100  # Debian's public CAs, for the SDKs
    local = sorted(Path("/usr/local/share/ca-certificates").glob("**/*.crt"))
    for cert in local:
        body = "".join(cert.read_text().split("-----")[2].split())
        assert body[:200] not in "".join(bundle.split()), f"{cert} is in the image"


def test_nothing_is_writable_by_the_operator_user(rootfs: Path) -> None:
    """Nothing belongs to uid 65532; world-writable folders are sticky temporary ones."""
    uid = int(USER.split(":")[0])
    owned, open_dirs = [], []
    for path in rootfs.rglob("*"):
        info = path.lstat()
        if info.st_uid == uid:
            owned.append(str(path.relative_to(rootfs)))
        if stat.S_ISDIR(info.st_mode) and info.st_mode & 0o002 and not info.st_mode & 0o1000:
            open_dirs.append(str(path.relative_to(rootfs)))
    assert owned == [] and open_dirs == []


def test_operator_package_matches_the_sources(rootfs: Path) -> None:
    """The wheel carried every module of operator/, and nothing stale."""
    site = next((rootfs / "opt/venv/lib").glob("python3*/site-packages"))
    shipped = {
        str(p.relative_to(site / "destination_operator"))
        for p in (site / "destination_operator").rglob("*.py")
    }
    source = ROOT / "operator" / "destination_operator"
    expected = {str(p.relative_to(source)) for p in source.rglob("*.py")}
    assert shipped == expected
    for rel in expected:
        assert (site / "destination_operator" / rel).read_bytes() == (source / rel).read_bytes()


def test_size_stays_reasonable(built: image.Built) -> None:
    """A regression guard, not a target: Python, the SDKs and Debian took 280 MiB unpacked."""
    print(f"\n{built.summary()}")
    assert built.unpacked_bytes < 400 * 2**20
    assert built.archive_bytes < 150 * 2**20


# --- running it -------------------------------------------------------------------------


def test_help_runs_as_non_root_on_a_read_only_root(start: Any, config: dict[str, Any]) -> None:
    out = run_in_image(start, [*config["config"]["Entrypoint"], "--help"])
    assert "usage: destination-operator" in out
    assert "run" in out and "lint" in out


def test_every_cloud_extra_imports_from_bytecode(start: Any) -> None:
    """The SDKs of `.[all]` import, each module from the .pyc compiled at build time.

    With a read-only root Python cannot write bytecode, so a module without a valid .pyc
    would be compiled again at every start; `-v` names every module compiled from source.
    """
    modules = (
        "boto3", "botocore.session", "azure.storage.blob", "google.cloud.storage", "oss2",
        "azure.identity", "google.auth.identity_pool",
        "kopf", "kubernetes", "destination_operator.main", "destination_operator.providers.s3",
        "destination_operator.providers.azure", "destination_operator.providers.gcs",
        "destination_operator.providers.oss", "destination_operator.providers.webhook",
        "destination_operator.providers.azure_identity",
        "destination_operator.providers.google_identity",
    )  # fmt: skip
    script = f"import importlib; [importlib.import_module(m) for m in {modules!r}]; print('ok')"
    out = run_in_image(start, ["python", "-v", "-c", script])
    assert re.search(r"^ok$", out, re.M), out[-3000:]
    from_source = re.findall(r"^# code object from (/\S+\.py)$", out, re.M)
    assert from_source == []
    assert len(re.findall(r"^# code object from '/opt/venv/\S+\.pyc'$", out, re.M)) > 500


def test_ca_bundles_are_written_under_tmp(start: Any) -> None:
    """The operator's one write (a Destination's caBundle) lands in /tmp, the emptyDir."""
    script = (
        "import re\n"
        "from destination_operator.providers.transport import ca_bundle_file\n"
        "pem = open('/etc/ssl/certs/ca-certificates.crt').read()\n"
        "cert = re.search('-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----', pem, re.S)\n"
        "print(ca_bundle_file(cert.group(0)))\n"
    )
    out = run_in_image(start, ["python", "-c", script])
    assert re.fullmatch(r"/tmp/\S+\.pem", out.strip()), out


def test_lint_checks_the_samples_inside_the_image(start: Any) -> None:
    """The operator's own code runs in the image: the samples lint clean there."""
    samples = ROOT / "manifests" / "samples"
    container: Container = start(
        ["/opt/venv/bin/destination-operator", "lint", "/samples"], binds={"/samples": samples}
    )
    code, out = container.wait(120)
    assert code == 0, out


def _wait(what: str, check: Any, timeout: float, container: Container) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if container.proc.poll() is not None:
            raise AssertionError(f"it exited waiting for {what}:\n{container.output()}")
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}:\n{container.output()[-5000:]}")


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except OSError:
        return 0, ""


def test_operator_verifies_a_destination_from_the_image(
    start: Any, cluster: Cluster, destination_crd: str, namespace: str, tmp_path: Path
) -> None:
    """The image, read-only and as uid 65532, under manifests/rbac, verifies against S3.

    It shares the host's network (as a hostNetwork pod would) to reach the test control
    plane and the S3 server on loopback; nothing else of the host is visible to it. It
    watches only the test's namespace; kopf then lists namespaces, which these rules
    refuse, and retries for about 55 s before it falls back to the namespace it was given.
    """
    cluster.kubectl("apply", "--server-side", "-k", str(ROOT / "manifests" / "rbac"))
    kubeconfig = cluster.token_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_SA, out_dir=tmp_path)
    kubeconfig.chmod(0o644)  # read by uid 65532 through a read-only bind
    health, metrics = free_port(), free_port()
    with S3Server(tmp_path / "s3") as s3:
        pair = s3.users["admin"]
        objects = [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "s3"},
                "stringData": {
                    "accessKeyId": pair.access_key_id,
                    "secretAccessKey": pair.secret_access_key,
                },
            },
            {
                "apiVersion": "destinations.io/v1alpha1",
                "kind": "Destination",
                "metadata": {"name": "from-image"},
                "spec": {
                    "type": "S3Compatible",
                    "environment": "Development",
                    "s3Compatible": {
                        "endpoint": s3.endpoint,
                        "bucket": s3.buckets[0],
                        "forcePathStyle": True,
                    },
                    "pathPrefix": "from-image/",
                    "credentials": {"secretRef": {"name": "s3"}},
                    "verification": {"interval": "1h", "timeout": "5s"},
                },
            },
        ]
        container: Container = start(
            ["/opt/venv/bin/destination-operator", "run", "--namespaces", namespace],
            env={
                "KUBECONFIG": "/etc/destination-operator/kubeconfig",
                "DESTINATION_OPERATOR_ALLOW_PRIVATE_ENDPOINTS": "true",
                "DESTINATION_OPERATOR_HEALTH_PORT": str(health),
                "DESTINATION_OPERATOR_METRICS_PORT": str(metrics),
            },
            binds={"/etc/destination-operator/kubeconfig": kubeconfig},
            host_network=True,
        )
        _wait(
            "/healthz",
            lambda: _get(f"http://127.0.0.1:{health}/healthz")[0] == 200,
            120,
            container,
        )
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(objects))

        def verified() -> bool:
            body = json.loads(
                cluster.kubectl("get", "-n", namespace, "dst", "from-image", "-o", "json").stdout
            )
            for item in (body.get("status") or {}).get("conditions") or []:
                if item.get("type") == "Verified":
                    assert item["status"] != "False", item
                    return bool(item["status"] == "True")
            return False

        _wait("Verified=True", verified, 120, container)
        _, text = _get(f"http://127.0.0.1:{metrics}/metrics")
        assert re.search(
            r'^destination_operator_probes_total\{reason="ProbeSucceeded",'
            r'type="S3Compatible"\} [1-9]',
            text,
            re.M,
        ), text
        code, out = container.stop()
    assert code == 0, out
    assert "Traceback" not in out and "Read-only file system" not in out, out
