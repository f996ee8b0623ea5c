"""Build the operator's container image without a Docker daemon, and cache it.

There is no registry and no Docker engine to lean on, so the image is made from parts:

1. a base: `debootstrap --variant=minbase` of Debian bookworm with python3 (3.11),
   python3-venv and ca-certificates, from the Debian mirror apt already uses, committed
   by buildah as `localhost/destination-operator-base:<base key>`;
2. the operator: the repository's Dockerfile, unchanged, built by buildah (`bud`) with
   `--build-arg BASE_IMAGE=` that base, `--pull=never`, the host's CA bundle passed as the
   build secret `build-ca` (for pip behind a TLS-intercepting proxy; it never lands in a
   layer) and host networking for `RUN` (no bridge or firewall rule is created).

Both are cached, keyed by their inputs, so nothing is rebuilt while the inputs stay:

- base key: Debian suite, package list and BASE_RECIPE_VERSION;
- operator key: Dockerfile, .dockerignore, pyproject.toml, README.md, every file under
  operator/destination_operator (no bytecode), the build arguments and the base key.

Archive naming convention (what the node fixture and the chart rely on):

- `<cache>/images/destination-operator-<key>.tar`: an OCI image archive (an OCI layout in
  a plain tar; gzip layers) holding one image, named `localhost/destination-operator:<tag>`
  where `<tag>` is the version in pyproject.toml (the chart's default tag, its appVersion).
  Its index.json carries `io.containerd.image.name` = that full name (so
  `ctr -n k8s.io images import ARCHIVE` names it with no flags) and
  `org.opencontainers.image.ref.name` = `<tag>` (the OCI layout convention;
  `ctr images import --base-name localhost/destination-operator` gives the same name).
  Pods use it with `imagePullPolicy: Never`.
- `<archive>.json` beside it: name, key, build time, compressed and unpacked sizes.
- `<cache>/images/destination-operator-named-<key>.tar`: another tree built under a name of
  its own (`image.build(root, name)`: an older release, for the upgrade tests), pruned apart.
- `<cache>/images/destination-operator-base-<key>.tar`: the base, named
  `localhost/destination-operator-base:<key>`, in the same form.
- `<cache>/buildah/`: buildah's own storage (overlay), which holds the layer cache that
  makes a rebuild after a source change take seconds.

`<cache>` is $DESTINATION_OPERATOR_CACHE, else ~/.cache/destination-operator (as for the
Go binaries in hack/build-binaries.sh).

    python hack/image.py build [--out DIR]   build or reuse; print the archive's path
    python hack/image.py base                build or reuse the base; print its path
    python hack/image.py clean               remove the cached archives and buildah's storage

From Python (tests, fixtures): `image.build()` returns a `Built` whose `.archive` is the
path and `.name` the image's name; `image.read_config(path)` gives manifest and config.

Needs root (debootstrap and buildah's storage); buildah, debootstrap and runc are
installed from Debian's archive when missing. DESTINATION_OPERATOR_DEBIAN_MIRROR overrides
the mirror, DESTINATION_OPERATOR_BUILD_CA the CA bundle given to pip.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NAME = "localhost/destination-operator"
BASE_NAME = "localhost/destination-operator-base"
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# Bump when the base recipe below changes in a way the key does not see.
BASE_RECIPE_VERSION = "1"
# Bump when the operator build below changes in a way the key does not see.
BUILD_RECIPE_VERSION = "1"
APT_PACKAGES = ("buildah", "debootstrap", "runc")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
HOST_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
# Archives (and build logs) kept per kind, newest first; older inputs' ones are removed.
KEEP_ARCHIVES = 3
# Everything the Dockerfile copies from the context (mirrors .dockerignore).
CONTEXT_FILES = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md")
CONTEXT_TREE = "operator/destination_operator"
STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ImageError(RuntimeError):
    """A build step failed; the message says which and carries the tail of its output."""


@dataclasses.dataclass(frozen=True)
class Built:
    """A cached image archive and what is known about it."""

    archive: Path
    name: str
    key: str
    seconds: float
    archive_bytes: int
    unpacked_bytes: int
    cached: bool

    def summary(self) -> str:
        """One line for people: name, sizes, and whether it came from the cache."""
        how = "cached" if self.cached else f"built in {self.seconds:.1f} s"
        return (
            f"{self.name}: {how}; archive {self.archive_bytes / 2**20:.1f} MiB, "
            f"unpacked {self.unpacked_bytes / 2**20:.1f} MiB: {self.archive}"
        )


def cache_root() -> Path:
    """The cache shared with hack/build-binaries.sh."""
    if "DESTINATION_OPERATOR_CACHE" in os.environ:
        return Path(os.environ["DESTINATION_OPERATOR_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "destination-operator"


def images_dir() -> Path:
    return cache_root() / "images"


def log(message: str) -> None:
    print(f"image: {message}", file=sys.stderr, flush=True)


def project_version(root: Path = ROOT) -> str:
    """The version in pyproject.toml: the image's tag and its version label."""
    with (root / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


# --- keys -------------------------------------------------------------------------------


def _digest(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def base_key() -> str:
    """Suite, packages and recipe version: the mirror's address does not change the result."""
    return _digest(
        {"suite": SUITE, "packages": sorted(BASE_PACKAGES), "recipe": BASE_RECIPE_VERSION}
    )


def context_files(root: Path = ROOT) -> list[Path]:
    """The files that reach the build context, relative to the repository."""
    files = [Path(name) for name in CONTEXT_FILES]
    for path in sorted((root / CONTEXT_TREE).rglob("*")):
        rel = path.relative_to(root)
        if (
            path.is_file()
            and "__pycache__" not in rel.parts
            and path.suffix not in {".pyc", ".pyo"}
        ):
            files.append(rel)
    return files


def build_args(root: Path = ROOT) -> dict[str, str]:
    return {"BASE_IMAGE": f"{BASE_NAME}:{base_key()}", "VERSION": project_version(root)}


def operator_key(root: Path = ROOT) -> str:
    """A hash of every input of the operator image: context files, build args, base key."""
    files = {
        str(rel): hashlib.sha256((root / rel).read_bytes()).hexdigest()
        for rel in context_files(root)
    }
    return _digest({"files": files, "args": build_args(root), "recipe": BUILD_RECIPE_VERSION})


def snapshot_context(dest: Path, root: Path = ROOT) -> None:
    """Copy the build context, so files edited during a build cannot make its key lie."""
    for rel in context_files(root):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, dest / rel)


# --- tools ------------------------------------------------------------------------------


def _run(
    cmd: list[str], *, timeout: float, what: str, logfile: Path | None = None, **kw: Any
) -> str:
    """Run a command, copying its output to `logfile` line by line (builds are long).

    Returns the output; on failure raises ImageError with the tail of it.
    """
    started = time.monotonic()
    lines: list[str] = []
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(logfile.open("a")) if logfile is not None else None
        if sink is not None:
            sink.write(f"$ {' '.join(cmd)}\n")
        proc = stack.enter_context(
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
        )
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if sink is not None:
                    sink.write(line)
                    sink.flush()
            proc.wait()
        finally:
            timer.cancel()
    if time.monotonic() - started >= timeout:
        raise ImageError(f"{what} timed out after {timeout:.0f} s: {' '.join(cmd)}")
    if proc.returncode != 0:
        tail = "".join(lines[-25:]).rstrip()
        raise ImageError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")
    log(f"{what}: {time.monotonic() - started:.1f} s")
    return "".join(lines)


def ensure_tools(extra: tuple[str, ...] = ()) -> None:
    """buildah, debootstrap, runc (and `extra`) from Debian's archive, as root.

    Each package is named after the command it provides; an error says what is missing.
    """
    if os.geteuid() != 0:
        raise ImageError(
            "building images needs root (debootstrap and buildah's storage); run as root"
        )
    missing = [tool for tool in (*APT_PACKAGES, *extra) if shutil.which(tool) is None]
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise ImageError(f"missing {', '.join(missing)} and no apt-get to install them")
    log(f"installing {', '.join(missing)} from Debian's archive")
    lock = ["-o", "DPkg::Lock::Timeout=600"]
    _run(["apt-get", *lock, "update", "-qq"], timeout=900, what="apt-get update")
    _run(
        ["apt-get", *lock, "install", "-y", "-qq", "--no-install-recommends", *missing],
        timeout=1800,
        what="apt-get install",
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    for tool in missing:
        version = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", tool], capture_output=True, text=True
        ).stdout
        log(f"installed {tool} {version}")


def buildah_cmd(*args: str) -> list[str]:
    """buildah with storage of its own under the cache (overlay).

    Its run state (mount counts, locks) goes under /run, which a reboot empties, as
    buildah's own default does; a persistent run state would outlive the mounts it counts.
    """
    return [
        "buildah",
        "--root",
        str(cache_root() / "buildah" / "storage"),
        "--runroot",
        str(runroot()),
        "--storage-driver",
        "overlay",
        *args,
    ]


def runroot() -> Path:
    """buildah's run state for this cache's storage (one per storage root, never shared)."""
    storage = str((cache_root() / "buildah" / "storage").resolve())
    return Path("/run/destination-operator") / f"buildah-{_digest({'storage': storage})[:8]}"


def _policy_file() -> Path:
    """Images here come only from local archives: accept them (no registry is ever asked)."""
    path = cache_root() / "buildah" / "policy.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    policy = {"default": [{"type": "insecureAcceptAnything"}]}
    if not path.exists() or json.loads(path.read_text()) != policy:
        path.write_text(json.dumps(policy))
    return path


def host_ca_bundle() -> Path | None:
    """The CA bundle pip should trust during the build (this host's, interceptors included)."""
    configured = os.environ.get("DESTINATION_OPERATOR_BUILD_CA")
    if configured:
        return Path(configured)
    for candidate in HOST_CA_BUNDLES:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


def debian_mirror() -> str:
    """The mirror apt already uses for the suite (read from /etc/apt), else deb.debian.org."""
    if os.environ.get("DESTINATION_OPERATOR_DEBIAN_MIRROR"):
        return os.environ["DESTINATION_OPERATOR_DEBIAN_MIRROR"]
    sources = [Path("/etc/apt/sources.list")]
    sources += sorted(Path("/etc/apt/sources.list.d").glob("*"))
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
                if (
                    SUITE in fields.get("Suites", "").split()
                    and "main" in fields.get("Components", "").split()
                ):
                    return str(fields.get("URIs", "").split()[0])
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
                if len(words) >= 4 and words[0] == "deb" and words[2] == SUITE:
                    return words[1]
    return DEFAULT_MIRROR


# --- archives ---------------------------------------------------------------------------


def _read_member(tar: tarfile.TarFile, name: str) -> bytes:
    member = tar.extractfile(name)
    if member is None:
        raise ImageError(f"{name} missing from the archive")
    return member.read()


def read_index(archive: Path) -> dict[str, Any]:
    """index.json of an OCI archive."""
    with tarfile.open(archive) as tar:
        return dict(json.loads(_read_member(tar, "index.json")))


def read_config(archive: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest and the image config of the archive's single image."""
    with tarfile.open(archive) as tar:
        index = json.loads(_read_member(tar, "index.json"))
        [entry] = index["manifests"]
        manifest = json.loads(_read_member(tar, _blob(entry["digest"])))
        config = json.loads(_read_member(tar, _blob(manifest["config"]["digest"])))
    return manifest, config


def _blob(digest: str) -> str:
    algorithm, hexdigest = digest.split(":", 1)
    return f"blobs/{algorithm}/{hexdigest}"


def iter_layers(archive: Path) -> Iterator[tarfile.TarFile]:
    """Each layer of the archive's image as an open tar stream, bottom first."""
    manifest, _ = read_config(archive)
    with tarfile.open(archive) as outer:
        for layer in manifest["layers"]:
            blob = outer.extractfile(_blob(layer["digest"]))
            if blob is None:
                raise ImageError(f"layer {layer['digest']} missing from {archive}")
            gzipped = layer["mediaType"].endswith("gzip")
            stream: io.BufferedIOBase = gzip.GzipFile(fileobj=blob) if gzipped else blob  # type: ignore[assignment]
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                yield tar


def unpacked_size(archive: Path) -> int:
    """Bytes of the layers uncompressed, as `docker images` would count them."""
    manifest, _ = read_config(archive)
    total = 0
    with tarfile.open(archive) as outer:
        for layer in manifest["layers"]:
            blob = outer.extractfile(_blob(layer["digest"]))
            assert blob is not None
            stream = gzip.GzipFile(fileobj=blob) if layer["mediaType"].endswith("gzip") else blob
            while chunk := stream.read(1 << 20):
                total += len(chunk)
    return total


def name_archive(archive: Path, name: str) -> None:
    """Rewrite index.json so containerd and OCI tools both find `name` (see the docstring)."""
    tag = name.rsplit(":", 1)[1]
    tmp = archive.with_suffix(".named")
    with tarfile.open(archive) as src, tarfile.open(tmp, "w") as dst:
        for member in src:
            data = src.extractfile(member) if member.isfile() else None
            if member.name == "index.json" and data is not None:
                index = json.loads(data.read())
                for entry in index["manifests"]:
                    entry.setdefault("annotations", {}).update(
                        {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag}
                    )
                body = json.dumps(index).encode()
                member.size = len(body)
                dst.addfile(member, io.BytesIO(body))
            else:
                dst.addfile(member, data)
    tmp.replace(archive)


def _push(image: str, archive: Path, logfile: Path) -> None:
    """Write `image` from buildah's storage to an OCI archive at `archive`, named `image`."""
    tmp = archive.with_suffix(".partial")
    tmp.unlink(missing_ok=True)
    _run(
        buildah_cmd(
            "push", "--signature-policy", str(_policy_file()), image, f"oci-archive:{tmp}:{image}"
        ),
        timeout=900,
        what=f"push {image}",
        logfile=logfile,
    )
    name_archive(tmp, image)
    tmp.replace(archive)


def _has_image(image: str) -> bool:
    done = subprocess.run(
        buildah_cmd("inspect", "--type", "image", image), capture_output=True, timeout=120
    )
    return done.returncode == 0


def _load(image: str, archive: Path, logfile: Path) -> None:
    """Put a cached archive back into buildah's storage (after its storage was wiped)."""
    out = _run(
        buildah_cmd(
            "pull", "--quiet", "--signature-policy", str(_policy_file()), f"oci-archive:{archive}"
        ),
        timeout=600,
        what=f"load {archive.name}",
        logfile=logfile,
    )
    image_id = out.strip().splitlines()[-1]
    _run(buildah_cmd("tag", image_id, image), timeout=60, what=f"tag {image}", logfile=logfile)


def _record(archive: Path, name: str, key: str, seconds: float) -> Built:
    built = Built(
        archive=archive,
        name=name,
        key=key,
        seconds=round(seconds, 1),
        archive_bytes=archive.stat().st_size,
        unpacked_bytes=unpacked_size(archive),
        cached=False,
    )
    info = {k: v for k, v in dataclasses.asdict(built).items() if k not in {"archive", "cached"}}
    archive.with_name(archive.name + ".json").write_text(json.dumps(info, indent=2) + "\n")
    return built


def _cached(archive: Path) -> Built | None:
    meta = archive.with_name(archive.name + ".json")
    if not (archive.is_file() and meta.is_file()):
        return None
    info = json.loads(meta.read_text())
    return Built(
        archive=archive,
        name=str(info["name"]),
        key=str(info["key"]),
        seconds=float(info["seconds"]),
        archive_bytes=int(info["archive_bytes"]),
        unpacked_bytes=int(info["unpacked_bytes"]),
        cached=True,
    )


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One build at a time per cache (a test session and a person may both ask)."""
    images_dir().mkdir(parents=True, exist_ok=True)
    with (images_dir() / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _prune(prefix: str, keep: Path) -> None:
    """Keep the newest KEEP_ARCHIVES archives of a kind; older inputs' archives go."""
    archives = sorted(
        (
            p
            for p in images_dir().glob(f"{prefix}-*.tar")
            if re.fullmatch(rf"{prefix}-[0-9a-f]{{16}}\.tar", p.name)
        ),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in archives[KEEP_ARCHIVES:]:
        if old != keep:
            old.unlink(missing_ok=True)
            old.with_name(old.name + ".json").unlink(missing_ok=True)
    kept = {p.name.removesuffix(".tar") for p in archives[:KEEP_ARCHIVES]}
    for log_file in images_dir().glob(f"{prefix}-*.log"):
        stem = log_file.name.removesuffix(".log")
        if re.fullmatch(rf"{prefix}-[0-9a-f]{{16}}", stem) and stem not in kept:
            log_file.unlink(missing_ok=True)


def clean() -> None:
    """Remove buildah's storage and every cached archive (containers first, as buildah needs)."""
    subprocess.run(buildah_cmd("rm", "--all"), capture_output=True, timeout=300)
    subprocess.run(buildah_cmd("rmi", "--all", "--force"), capture_output=True, timeout=600)
    shutil.rmtree(cache_root() / "buildah", ignore_errors=True)
    shutil.rmtree(runroot(), ignore_errors=True)
    shutil.rmtree(images_dir(), ignore_errors=True)


# --- the base ---------------------------------------------------------------------------


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point.startswith(prefix):
            mounts.append(point)
    return sorted(mounts, reverse=True)


def _trim_rootfs(rootfs: Path) -> None:
    """Drop what a container does not need: package caches, logs, docs (not copyrights)."""
    for pattern in (
        "var/cache/apt/archives/*.deb",
        "var/cache/apt/*.bin",
        "var/lib/apt/lists/*_*",
        "var/log/*",
        "var/cache/debconf/*-old",
        "var/lib/dpkg/*-old",
        "usr/share/man/*",
        "usr/share/info/*",
        "usr/share/locale/*",
        "dev/*",
        "etc/hostname",
        "etc/resolv.conf",
    ):
        for path in rootfs.glob(pattern):
            if path.name == "locale.alias":
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    for path in sorted((rootfs / "usr/share/doc").rglob("*"), reverse=True):
        if path.is_symlink() or (path.is_file() and path.name != "copyright"):
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    machine_id = rootfs / "etc/machine-id"
    if machine_id.exists():
        machine_id.write_text("")


def build_base() -> Built:
    """The Debian base, from the cache or made now (debootstrap takes a minute or two)."""
    key = base_key()
    name = f"{BASE_NAME}:{key}"
    archive = images_dir() / f"destination-operator-base-{key}.tar"
    logfile = images_dir() / f"destination-operator-base-{key}.log"
    cached = _cached(archive)
    if cached is not None:
        if not _has_image(name):
            _load(name, archive, logfile)
        return cached
    ensure_tools()
    started = time.monotonic()
    mirror = debian_mirror()
    logfile.write_text("")
    log(f"making the base {name} from {mirror} (debootstrap; a minute or two)")
    work = Path(tempfile.mkdtemp(prefix=".base-", dir=images_dir()))
    container = None
    try:
        rootfs = work / "rootfs"
        keyring = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                *([f"--keyring={keyring}"] if keyring.is_file() else []),
                SUITE,
                str(rootfs),
                mirror,
            ],
            timeout=1800,
            what="debootstrap",
            logfile=logfile,
        )
        _trim_rootfs(rootfs)
        container = _run(
            buildah_cmd("from", "--pull=never", "scratch"),
            timeout=120,
            what="buildah from scratch",
            logfile=logfile,
        ).strip()
        mount = _run(
            buildah_cmd("mount", container), timeout=120, what="buildah mount", logfile=logfile
        ).strip()
        # tar keeps owners, modes, hard links and special bits exactly as dpkg left them.
        _run(
            ["sh", "-c", f'tar -C "{rootfs}" -cf - . | tar -C "{mount}" -xpf - --numeric-owner'],
            timeout=600,
            what="copy the root filesystem",
            logfile=logfile,
        )
        _run(buildah_cmd("umount", container), timeout=120, what="buildah umount", logfile=logfile)
        _run(
            buildah_cmd(
                "config",
                "--env",
                f"PATH={STANDARD_PATH}",
                "--env",
                "LANG=C.UTF-8",
                "--cmd",
                '["python3"]',
                "--created-by",
                f"debootstrap --variant=minbase --include={','.join(BASE_PACKAGES)} {SUITE}",
                "--label",
                f"org.opencontainers.image.title={BASE_NAME}",
                container,
            ),
            timeout=120,
            what="buildah config",
            logfile=logfile,
        )
        _run(
            buildah_cmd("commit", "--format", "oci", "--rm", container, name),
            timeout=600,
            what="buildah commit",
            logfile=logfile,
        )
        container = None
        _push(name, archive, logfile)
    finally:
        if container is not None:
            subprocess.run(buildah_cmd("rm", container), capture_output=True, timeout=120)
        for point in _mounts_under(work):
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=60)
        if not _mounts_under(work):
            shutil.rmtree(work, ignore_errors=True)
    built = _record(archive, name, key, time.monotonic() - started)
    _prune("destination-operator-base", archive)
    log(built.summary())
    return built


# --- the operator -----------------------------------------------------------------------


def build(root: Path = ROOT, name: str | None = None) -> Built:
    """The operator image from the cache, or built now with buildah from the Dockerfile.

    `root` and `name` build another tree (an older release's, for the upgrade tests) under a
    name of its own; its archive is kept apart from the pruning of this tree's.
    """
    with _locked(), tempfile.TemporaryDirectory(prefix=".context-", dir=images_dir()) as tmp:
        base = build_base()
        context = Path(tmp)
        snapshot_context(context, root)
        key = operator_key(context)
        prefix = "destination-operator"
        if name is not None:
            key, prefix = _digest({"of": key, "name": name}), "destination-operator-named"
        name = name or f"{NAME}:{project_version(context)}"
        archive = images_dir() / f"{prefix}-{key}.tar"
        cached = _cached(archive)
        if cached is not None:
            return cached
        ensure_tools()
        started = time.monotonic()
        logfile = images_dir() / f"{prefix}-{key}.log"
        logfile.write_text("")
        cmd = [
            "bud",
            "--pull=never",
            "--layers",
            "--format",
            "oci",
            "--network",
            "host",
            "--signature-policy",
            str(_policy_file()),
            "--file",
            str(context / "Dockerfile"),
            "--tag",
            name,
        ]
        for arg, value in build_args(context).items():
            cmd += ["--build-arg", f"{arg}={value}"]
        ca = host_ca_bundle()
        if ca is not None:
            cmd += ["--secret", f"id=build-ca,src={ca}"]
        log(f"building {name} on {base.name} (key {key}; log {logfile})")
        _run(buildah_cmd(*cmd, str(context)), timeout=1800, what="buildah bud", logfile=logfile)
        _push(name, archive, logfile)
        built = _record(archive, name, key, time.monotonic() - started)
        _prune(prefix, archive)
        log(built.summary())
        return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="image.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("build", help="build or reuse the operator image; print its archive")
    run.add_argument("--out", type=Path, help="also put the archive in this folder")
    sub.add_parser("base", help="build or reuse the base image; print its archive")
    sub.add_parser("clean", help="remove buildah's storage and the cached archives")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        if args.command == "clean":
            with _locked():
                clean()
            return 0
        if args.command == "base":
            with _locked():
                built = build_base()
        else:
            built = build()
    except (ImageError, subprocess.TimeoutExpired) as err:
        print(f"image: error: {err}", file=sys.stderr)
        return 1
    if built.cached:
        log(built.summary())
    log(f"done in {time.monotonic() - started:.1f} s")
    path = built.archive
    if args.command == "build" and args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        target = args.out / path.name
        target.unlink(missing_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
        path = target
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
