"""kstatus verdicts from the real library, for tests that pin what Flux and kpt conclude.

hack/build-binaries.sh builds `kstatus` (hack/kstatus/main.go) into the bin folder it
prints: `sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute` at the version in
hack/versions.env, behind stdin and stdout. This module runs it.

    compute([destination, config_map], bin_dir)  # ["InProgress", "Current"]
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class KstatusError(Exception):
    """The helper is missing, refused its input, or printed something unexpected."""


@dataclass(frozen=True)
class Result:
    """One object's verdict, as status.Compute returns it."""

    name: str
    namespace: str
    status: str  # Current, InProgress, Failed, Terminating (or Unknown, NotFound)
    message: str


def binary(bin_dir: Path) -> Path:
    """The helper in bin_dir; a KstatusError that says how to get it when it is not there."""
    path = bin_dir / "kstatus"
    if not os.access(path, os.X_OK):
        raise KstatusError(
            f"kstatus missing in {bin_dir}: run 'bash hack/build-binaries.sh' (it needs Go)"
            " and use the folder it prints"
        )
    return path


def results(
    objects: Sequence[Mapping[str, Any]], bin_dir: Path, *, timeout: float = 60
) -> list[Result]:
    """status.Compute on each object, in order; one helper run for all of them."""
    done = subprocess.run(
        [str(binary(bin_dir))],
        input=json.dumps(list(objects)),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise KstatusError(done.stderr.strip() or f"kstatus exited with {done.returncode}")
    lines = done.stdout.splitlines()
    if len(lines) != len(objects):
        raise KstatusError(f"kstatus printed {len(lines)} lines for {len(objects)} objects")
    out = []
    for line in lines:
        item = json.loads(line)
        out.append(
            Result(
                name=str(item["name"]),
                namespace=str(item["namespace"]),
                status=str(item["status"]),
                message=str(item["message"]),
            )
        )
    return out


def compute(objects: Sequence[Mapping[str, Any]], bin_dir: Path) -> list[str]:
    """The kstatus of each object, in order: "Current", "InProgress", "Failed", ..."""
    return [result.status for result in results(objects, bin_dir)]
