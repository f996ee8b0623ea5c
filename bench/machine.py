"""What the figures were measured on: the machine, Python, the binaries, the packages.

Figures from a 2-core machine shared with other work are not figures from a
quiet 16-core one; every result carries these facts so the two are never
compared by mistake.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

PACKAGES = ("destination-operator", "kopf", "kubernetes", "boto3", "moto", "prometheus-client")


def _first_line(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except OSError as err:
        return f"unavailable: {err}"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else f"exit {done.returncode}, no output"


def _proc_value(path: str, key: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    except OSError:
        pass
    return "unknown"


def facts(bin_dir: Path) -> dict[str, Any]:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    load = os.getloadavg()
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _proc_value("/proc/cpuinfo", "model name"),
        "memory_total": _proc_value("/proc/meminfo", "MemTotal"),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": [round(value, 2) for value in load],
        "kube_apiserver": _first_line([str(bin_dir / "kube-apiserver"), "--version"]),
        "kube_controller_manager": _first_line(
            [str(bin_dir / "kube-controller-manager"), "--version"]
        ),
        "etcd": _first_line([str(bin_dir / "etcd"), "--version"]),
        "packages": versions,
    }
