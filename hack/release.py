#!/usr/bin/env python3
"""Build a release's artifacts into dist/: image, chart, install.yaml, SBOM, checksums.

    python hack/release.py 1.2.3 [--out dist] [--repository ghcr.io/OWNER/destination-operator]

Everything is built from a copy of the sources stamped with the version (pyproject.toml,
the package's __version__, the chart's version and appVersion, the CHANGELOG heading),
so the working tree is never written; only `--out` is. What lands there:

- `destination-operator-image-<v>.tar`: the image (hack/image.py), an OCI archive named
  `<repository>:<v>`; `destination-operator-image-<v>.digest`: its manifest digest;
- `destination-operator-<v>.tgz`: `helm package` of the chart, whose default image is
  `<repository>:<v>@<digest>`;
- `install.yaml`: that chart rendered with its CRD and a Namespace, for `kubectl apply -f`;
- `sbom.cdx.json`: a CycloneDX SBOM of the image's Python packages (cyclonedx-bom, from
  PyPI, in a cache entry of its own); `debian-packages.txt`: the image's dpkg database
  as `dpkg-query` lists it (not part of the SBOM);
- `CHANGELOG.md`: the stamped copy; `checksums.txt`: sha256 of every file above.

Needs root (the image build) and helm (`hack/build-binaries.sh release` prints its folder).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

import chart
import image

ROOT = Path(__file__).resolve().parent.parent
REPOSITORY = "ghcr.io/destination-operator/destination-operator"
VERSION_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$")
CYCLONEDX_BOM_VERSION = "7.5.0"
# The stamped files, relative to the repository, besides the chart.
PYPROJECT = "pyproject.toml"
PACKAGE_INIT = "operator/destination_operator/__init__.py"
CHANGELOG = "CHANGELOG.md"
UNRELEASED = re.compile(r"^## \[Unreleased\].*$", re.M)


class ReleaseError(RuntimeError):
    """A step failed; the message says which."""


def log(message: str) -> None:
    print(f"release: {message}", file=sys.stderr, flush=True)


def _sub_once(pattern: str, repl: str, text: str, what: str) -> str:
    out, count = re.subn(pattern, repl, text, count=1, flags=re.M)
    if count != 1:
        raise ReleaseError(f"cannot stamp the version: {what} not found")
    return out


# --- the stamped copy -------------------------------------------------------------------


def stage_sources(dest: Path, version: str, date: str) -> None:
    """Copy what the image and the chart are made of into `dest`, stamped with `version`."""
    for rel in image.context_files(ROOT):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    shutil.copytree(chart.CHART, dest / "chart")
    py = dest / PYPROJECT
    py.write_text(
        _sub_once(r'^version = "[^"]*"$', f'version = "{version}"', py.read_text(), PYPROJECT)
    )
    init = dest / PACKAGE_INIT
    init.write_text(
        _sub_once(
            r'^__version__ = "[^"]*"$',
            f'__version__ = "{version}"',
            init.read_text(),
            f"__version__ in {PACKAGE_INIT}",
        )
    )
    changelog = (ROOT / CHANGELOG).read_text()
    if not UNRELEASED.search(changelog):
        raise ReleaseError(f"cannot stamp the version: no '## [Unreleased]' heading in {CHANGELOG}")
    (dest / CHANGELOG).write_text(UNRELEASED.sub(f"## [{version}] - {date}", changelog, count=1))


def stamp_chart(chart_dir: Path, version: str, repository: str, digest: str) -> None:
    """The chart's version and appVersion, and its default image pinned by tag and digest."""
    meta = chart_dir / "Chart.yaml"
    text = _sub_once(r"^version: .*$", f"version: {version}", meta.read_text(), "Chart version")
    meta.write_text(_sub_once(r"^appVersion: .*$", f'appVersion: "{version}"', text, "appVersion"))
    values = chart_dir / "values.yaml"
    text = values.read_text()
    # Line edits inside the top-level `image:` block keep values.yaml's comments.
    text = _sub_once(r"^  repository: .*$", f"  repository: {repository}", text, "image.repository")
    text = _sub_once(r'^  tag: "[^"]*"$', f'  tag: "{version}"', text, "image.tag")
    text = _sub_once(r'^  digest: "[^"]*"$', f'  digest: "{digest}"', text, "image.digest")
    values.write_text(text)
    image_values = yaml.safe_load(text)["image"]
    want = {"repository": repository, "tag": version, "digest": digest}
    if {k: image_values.get(k) for k in want} != want:
        raise ReleaseError(f"values.yaml's image is {image_values} after stamping, not {want}")


# --- the artifacts ----------------------------------------------------------------------


def image_digest(archive: Path) -> str:
    [entry] = image.read_index(archive)["manifests"]
    return str(entry["digest"])


def release_image(source: Path, out: Path, version: str, repository: str) -> tuple[Path, str]:
    """The image built from the stamped copy, as an archive in `out` named `repository:v`."""
    built = image.build(source)
    log(built.summary())
    target = out / f"destination-operator-image-{version}.tar"
    shutil.copyfile(built.archive, target)
    # Only index.json names the image: the manifest, and so the digest, stay the same.
    image.name_archive(target, f"{repository}:{version}")
    _, config = image.read_config(target)
    label = config.get("config", {}).get("Labels", {}).get("org.opencontainers.image.version")
    if label != version:
        raise ReleaseError(f"the image's version label is {label!r}, not {version!r}")
    digest = image_digest(target)
    if digest != image_digest(built.archive):
        raise ReleaseError("naming the archive changed its digest")
    (out / f"destination-operator-image-{version}.digest").write_text(digest + "\n")
    return target, digest


def package_chart(helm: Path, chart_dir: Path, out: Path, version: str) -> Path:
    done = subprocess.run(
        [str(helm), "package", str(chart_dir), "--destination", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ReleaseError(f"helm package failed: {chart._helm_error(done.stderr)}")
    package = out / f"destination-operator-{version}.tgz"
    if not package.is_file():
        raise ReleaseError(f"helm package wrote no {package.name}: {done.stdout.strip()}")
    return package


def install_manifest(helm: Path, package: Path, version: str) -> str:
    """The packaged chart rendered as `kubectl apply -f` wants it: CRD, Namespace, the rest.

    The values are manifests/' (chart.BASE_VALUES) with the chart's CRD template on and
    without Helm's keep annotation; Helm's own labels are dropped, since no Helm release
    owns these objects.
    """
    values = {**chart.BASE_VALUES, "crds": {"install": True, "keep": False}}
    rendered = chart.helm_template(helm, chart_dir=package, values=values)
    docs = [chart.strip_helm_labels(doc) for doc in chart.documents(rendered)]
    first = {"CustomResourceDefinition": 0, "Namespace": 1}
    docs.sort(key=lambda doc: first.get(yaml.safe_load(doc)["kind"], 2))  # stable: Helm's order
    kinds = [yaml.safe_load(doc)["kind"] for doc in docs]
    if kinds[:2] != ["CustomResourceDefinition", "Namespace"]:
        raise ReleaseError(f"install.yaml would start with {kinds[:2]}, not the CRD and Namespace")
    header = (
        f"# Destination Operator {version}: the CRD, the namespace {chart.NAMESPACE}, RBAC,\n"
        f"# the operator's Deployment and metrics Service. kubectl apply -f install.yaml\n"
    )
    return header + "".join(f"---\n{doc}" for doc in docs)


def sbom_tool() -> Path:
    """cyclonedx-py from PyPI, in a virtualenv of its own under the binary cache."""
    entry = image.cache_root() / f"cyclonedx-bom-{CYCLONEDX_BOM_VERSION}"
    tool = entry / "bin" / "cyclonedx-py"
    if (entry / ".complete").is_file():
        return tool
    shutil.rmtree(entry, ignore_errors=True)
    log(f"installing cyclonedx-bom {CYCLONEDX_BOM_VERSION} from PyPI into {entry}")
    subprocess.run([sys.executable, "-m", "venv", str(entry)], check=True)
    subprocess.run(
        [
            str(entry / "bin" / "pip"),
            "install",
            "--quiet",
            f"cyclonedx-bom=={CYCLONEDX_BOM_VERSION}",
        ],
        check=True,
    )
    (entry / ".complete").write_text("")
    return tool


def _extract(archive: Path, dest: Path) -> None:
    """What the SBOM reads from the image's layers: the packages' metadata in /opt/venv and
    dpkg's database (the final stage of the Dockerfile deletes nothing, so no whiteouts)."""
    for layer in image.iter_layers(archive):
        for member in layer:
            name = member.name.removeprefix("./")
            wanted = (name.startswith("opt/venv/lib/") and ".dist-info/" in name) or (
                name.startswith("var/lib/dpkg/") and not name.startswith("var/lib/dpkg/info/")
            )
            if wanted and member.isfile():
                member.name = name
                layer.extract(member, dest, filter="tar")


def sbom(archive: Path, out: Path, version: str, repository: str) -> None:
    """A CycloneDX SBOM of the Python packages in the image's /opt/venv, and its dpkg list."""
    with tempfile.TemporaryDirectory(prefix="sbom-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        _extract(archive, rootfs)
        [site] = rootfs.glob("opt/venv/lib/python3*/site-packages")
        # A virtualenv of the host's Python holding the image's packages: cyclonedx-py
        # reads their metadata (dist-info), which does not depend on the Python version.
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        [target] = venv.glob("lib/python3*/site-packages")
        shutil.rmtree(target)
        shutil.move(site, target)
        sbom_file = out / "sbom.cdx.json"
        subprocess.run(
            [
                str(sbom_tool()),
                "environment",
                "--output-reproducible",
                "--output-format",
                "JSON",
                "--output-file",
                str(sbom_file),
                str(venv),
            ],
            check=True,
        )
        document = json.loads(sbom_file.read_text())
        # The document describes the image, not the throwaway virtualenv it was read from.
        document.setdefault("metadata", {})["component"] = {
            "type": "container",
            "name": repository,
            "version": version,
            "bom-ref": f"{repository}:{version}",
        }
        sbom_file.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        listing = subprocess.run(
            [
                "dpkg-query",
                f"--admindir={rootfs / 'var/lib/dpkg'}",
                "-W",
                "-f=${Package}\t${Version}\t${Architecture}\n",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        (out / "debian-packages.txt").write_text("".join(sorted(listing.splitlines(keepends=True))))


def checksums(out: Path) -> None:
    lines = [
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n"
        for path in sorted(out.iterdir())
        if path.is_file() and path.name != "checksums.txt"
    ]
    (out / "checksums.txt").write_text("".join(lines))


def release(version: str, out: Path, repository: str, helm: Path) -> None:
    if not VERSION_RE.fullmatch(version):
        raise ReleaseError(f"VERSION {version!r} is not a semantic version like 1.2.3")
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    if os.environ.get("SOURCE_DATE_EPOCH"):
        date = datetime.datetime.fromtimestamp(
            int(os.environ["SOURCE_DATE_EPOCH"]), datetime.UTC
        ).strftime("%Y-%m-%d")
    if out.exists() and any(out.iterdir()) and not (out / "checksums.txt").is_file():
        raise ReleaseError(f"{out} holds files but no earlier release: not emptying it")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="release-") as tmp:
        source = Path(tmp)
        stage_sources(source, version, date)
        started = time.monotonic()
        archive, digest = release_image(source, out, version, repository)
        log(f"image {repository}:{version}@{digest} in {time.monotonic() - started:.1f} s")
        stamp_chart(source / "chart", version, repository, digest)
        package = package_chart(helm, source / "chart", out, version)
        (out / "install.yaml").write_text(install_manifest(helm, package, version))
        shutil.copyfile(source / CHANGELOG, out / CHANGELOG)
    started = time.monotonic()
    sbom(archive, out, version, repository)
    log(f"SBOM in {time.monotonic() - started:.1f} s")
    checksums(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="release.py", description=__doc__.splitlines()[0])
    parser.add_argument("version", help="the release's version, e.g. 1.2.3")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="default: dist/")
    parser.add_argument(
        "--repository", default=REPOSITORY, help=f"the image's (default {REPOSITORY})"
    )
    parser.add_argument(
        "--bin-dir",
        type=Path,
        default=os.environ.get("DESTINATION_OPERATOR_BIN_DIR"),
        help="folder with helm (default: $DESTINATION_OPERATOR_BIN_DIR)",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        if args.bin_dir is None or not (args.bin_dir / "helm").is_file():
            raise ReleaseError("no helm: pass --bin-dir (hack/build-binaries.sh release prints it)")
        release(args.version, args.out, args.repository, args.bin_dir / "helm")
    except (ReleaseError, chart.ChartError, image.ImageError, subprocess.CalledProcessError) as err:
        print(f"release: error: {err}", file=sys.stderr)
        return 1
    log(f"wrote {args.out} in {time.monotonic() - started:.1f} s")
    for path in sorted(args.out.iterdir()):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
