#!/usr/bin/env python3
"""Write an OCI image archive from a root filesystem folder or one static binary.

There is no image registry and no Docker engine here, yet the node needs images
(its pause image, small test images) and buildah needs a base to build on. An
OCI image is a small, documented layout, so it is written directly: one
uncompressed tar layer, an image config (with a `history` entry, since buildah's
layer cache refuses a base without one), a manifest, and an `index.json` that
names the image. The result is what `ctr -n k8s.io images import` and
`buildah pull oci-archive:FILE` take.

    python hack/ociarchive.py --binary PAUSE --name localhost/pause:3.10.1 out.tar
    python hack/ociarchive.py --rootfs DIR --name localhost/base:1 --cmd '/bin/sh -l' out.tar

Archives are reproducible: entries are sorted, the metadata's times are
SOURCE_DATE_EPOCH (default 0), a binary's time is that too, and a root
filesystem's times are kept (clamped to SOURCE_DATE_EPOCH when set), so equal
inputs give equal digests.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import json
import os
import platform
import shlex
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# containerd takes the image's name from this annotation; the OCI one is for other tools.
CONTAINERD_NAME = "io.containerd.image.name"
OCI_REF_NAME = "org.opencontainers.image.ref.name"
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}


class OCIArchiveError(Exception):
    """The input cannot become an image (a missing path, a bad name)."""


@dataclass
class ImageConfig:
    """The runtime part of an image config: what a container of it runs."""

    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: list[str] = field(default_factory=lambda: [DEFAULT_PATH])
    user: str = ""
    workdir: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"Env": list(self.env)}
        if self.entrypoint is not None:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            out["Cmd"] = list(self.cmd)
        if self.user:
            out["User"] = self.user
        if self.workdir:
            out["WorkingDir"] = self.workdir
        if self.labels:
            out["Labels"] = dict(self.labels)
        return out


def source_date_epoch() -> int | None:
    """SOURCE_DATE_EPOCH when set (the reproducible-builds convention), else None."""
    value = os.environ.get("SOURCE_DATE_EPOCH")
    return int(value) if value else None


def architecture() -> str:
    machine = platform.machine()
    return _ARCH.get(machine, machine)


def _check_name(name: str) -> None:
    # A full reference with a tag: containerd and buildah both want one.
    last = name.rsplit("/", 1)[-1]
    if "/" not in name or ":" not in last or name != name.lower():
        raise OCIArchiveError(f"image name {name!r}: want lower-case REGISTRY/REPO:TAG")


# --- the layer -----------------------------------------------------------------------------


def _walk(root: Path) -> Iterator[Path]:
    """Every path under root, parents before children, siblings sorted."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted([*dirnames, *filenames]):
            yield base / name


def write_layer_from_rootfs(rootfs: Path, out: io.BufferedIOBase, clamp: int | None) -> None:
    """A tar of rootfs's contents (paths relative to it), owners, modes and times kept.

    Times are clamped to `clamp` when given; they are not reset, since Python's
    timestamp-based .pyc files would then look stale in a read-only image.
    Sockets are left out (a tar cannot hold them).
    """
    if not rootfs.is_dir():
        raise OCIArchiveError(f"{rootfs} is not a folder")
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in _walk(rootfs):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(rootfs)))
            if info is None:
                continue
            if clamp is not None:
                info.mtime = min(int(info.mtime), clamp)
            info.uname = info.gname = ""
            if info.isreg():
                with open(path, "rb") as data:
                    tar.addfile(info, data)
            else:
                tar.addfile(info)


def write_layer_from_binary(binary: Path, out: io.BufferedIOBase, mtime: int) -> str:
    """A tar holding one executable at /<name>, owned by root; returns its path in the image."""
    if not binary.is_file():
        raise OCIArchiveError(f"{binary} is not a file")
    info = tarfile.TarInfo(binary.name)
    info.size = binary.stat().st_size
    info.mode = 0o755
    info.mtime = mtime
    with (
        tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar,
        open(binary, "rb") as data,
    ):
        tar.addfile(info, data)
    return f"/{binary.name}"


# --- the archive ---------------------------------------------------------------------------


class _Blobs:
    """Content-addressed blobs written into an open archive, remembered by digest."""

    def __init__(self, tar: tarfile.TarFile, mtime: int) -> None:
        self.tar = tar
        self.mtime = mtime

    def add_bytes(self, data: bytes) -> tuple[str, int]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.add_file_like(digest, len(data), io.BytesIO(data))
        return digest, len(data)

    def add_file_like(self, digest: str, size: int, data: io.IOBase) -> None:
        info = tarfile.TarInfo(f"blobs/sha256/{digest.split(':', 1)[1]}")
        info.size, info.mode, info.mtime = size, 0o644, self.mtime
        self.tar.addfile(info, data)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def write_archive(
    out: Path,
    name: str,
    *,
    rootfs: Path | None = None,
    binary: Path | None = None,
    config: ImageConfig | None = None,
    created_by: str | None = None,
) -> str:
    """Write an OCI archive of one image to `out`; return the manifest digest.

    Exactly one of `rootfs` (a folder that becomes /) or `binary` (a static
    executable placed at /<its name>, the entrypoint unless `config` says
    otherwise) is given.
    """
    if (rootfs is None) == (binary is None):
        raise OCIArchiveError("give exactly one of rootfs or binary")
    _check_name(name)
    config = config or ImageConfig()
    clamp = source_date_epoch()
    mtime = clamp or 0
    created = datetime.datetime.fromtimestamp(mtime, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".ociarchive-") as scratch:
        layer_path = Path(scratch) / "layer.tar"
        with open(layer_path, "wb") as layer:
            if binary is not None:
                inside = write_layer_from_binary(binary, layer, mtime)
                if config.entrypoint is None and config.cmd is None:
                    config.entrypoint = [inside]
                what = f"a static binary at {inside}"
            else:
                assert rootfs is not None
                write_layer_from_rootfs(rootfs, layer, clamp)
                what = "a root filesystem"
        layer_digest, layer_size = _sha256_of(layer_path), layer_path.stat().st_size
        image_config = {
            "created": created,
            "architecture": architecture(),
            "os": "linux",
            "config": config.to_json(),
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            "history": [
                {"created": created, "created_by": created_by or f"hack/ociarchive.py: {what}"}
            ],
        }
        tmp_out = Path(scratch) / "out.tar"
        with tarfile.open(tmp_out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            blobs = _Blobs(tar, mtime)
            with open(layer_path, "rb") as layer_data:
                blobs.add_file_like(layer_digest, layer_size, layer_data)
            config_digest, config_size = blobs.add_bytes(_canonical(image_config))
            manifest = {
                "schemaVersion": 2,
                "mediaType": MEDIA_MANIFEST,
                "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": config_size},
                "layers": [{"mediaType": MEDIA_LAYER, "digest": layer_digest, "size": layer_size}],
            }
            manifest_digest, manifest_size = blobs.add_bytes(_canonical(manifest))
            index = {
                "schemaVersion": 2,
                "mediaType": MEDIA_INDEX,
                "manifests": [
                    {
                        "mediaType": MEDIA_MANIFEST,
                        "digest": manifest_digest,
                        "size": manifest_size,
                        "platform": {"architecture": architecture(), "os": "linux"},
                        "annotations": {CONTAINERD_NAME: name, OCI_REF_NAME: name},
                    }
                ],
            }
            for member, data in (
                ("oci-layout", _canonical({"imageLayoutVersion": "1.0.0"})),
                ("index.json", _canonical(index)),
            ):
                info = tarfile.TarInfo(member)
                info.size, info.mode, info.mtime = len(data), 0o644, mtime
                tar.addfile(info, io.BytesIO(data))
        os.replace(tmp_out, out)
    return manifest_digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--rootfs", type=Path, help="a folder that becomes the image's /")
    source.add_argument("--binary", type=Path, help="a static executable, placed at /<name>")
    parser.add_argument("--name", required=True, help="full name with tag, e.g. localhost/x:1")
    parser.add_argument("--entrypoint", help="a command line (shell words); default: the binary")
    parser.add_argument("--cmd", help="a command line (shell words)")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE (repeatable)")
    parser.add_argument("--user", default="", help="e.g. 65532:65532")
    parser.add_argument("--workdir", default="")
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    config = ImageConfig(
        entrypoint=shlex.split(args.entrypoint) if args.entrypoint else None,
        cmd=shlex.split(args.cmd) if args.cmd else None,
        env=[DEFAULT_PATH, *args.env],
        user=args.user,
        workdir=args.workdir,
    )
    try:
        digest = write_archive(
            args.out, args.name, rootfs=args.rootfs, binary=args.binary, config=config
        )
    except (OCIArchiveError, OSError) as err:
        print(f"ociarchive: error: {err}", file=sys.stderr)
        return 1
    print(f"ociarchive: {args.name} {digest} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
