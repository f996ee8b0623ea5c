"""docs/install.md: hack/kind-e2e.sh stops at once, with a clear message, without Docker."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_kind_e2e_stops_at_once_when_no_docker_engine_answers(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    called = tmp_path / "called"
    # docker is installed but no engine answers; any other tool records that it ran
    stubs = {"docker": "exit 1", "kind": f"echo kind >> {called}", "kubectl": "", "helm": ""}
    for name, body in stubs.items():
        stub = bin_dir / name
        stub.write_text(f"#!/bin/sh\n{body}\n")
        stub.chmod(0o755)
    done = subprocess.run(
        ["bash", str(ROOT / "hack" / "kind-e2e.sh")],
        env={**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "kind-e2e: error: no Docker engine answers ('docker info' failed): start Docker "
        "(or point DOCKER_HOST at one) and run again"
    ]
    assert not called.exists()
