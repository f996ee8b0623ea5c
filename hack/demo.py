#!/usr/bin/env python3
"""The README's main job: a control plane, an S3 server, the operator, three Destinations.

    python hack/demo.py up     # start what is not running, apply samples, show the truth
    python hack/demo.py down   # stop everything `up` started

State lives in .cluster/ (the control plane, shared with `make cluster-up`)
and .demo/ (the S3 server, the operator and their logs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from controlplane import (
    ControlPlane,
    ControlPlaneError,
    alive,
    find_binaries,
    free_port,
    stop_pid,
)

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = Path(".cluster")
DEMO = Path(".demo")
NAMESPACE = "demo"


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def start_detached(name: str, args: list[str], env: dict[str, str] | None = None) -> int:
    """Start a process that outlives this script; its pid goes to .demo/NAME.pid."""
    pid_file = DEMO / f"{name}.pid"
    if pid_file.exists() and alive(int(pid_file.read_text())):
        say(f"{name} already running (pid {pid_file.read_text().strip()})")
        return int(pid_file.read_text())
    with (DEMO / f"{name}.log").open("ab") as log:
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    pid_file.write_text(str(proc.pid))
    return proc.pid


def start_s3() -> dict[str, object]:
    state = DEMO / "s3"
    credentials = state / "credentials.json"
    pid_file = DEMO / "s3server.pid"
    if not (pid_file.exists() and alive(int(pid_file.read_text()))):
        credentials.unlink(missing_ok=True)
        state.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, str(ROOT / "hack" / "s3server.py"), "--port", str(free_port())]
        args += ["--state", str(state), "--bucket", "demo-reports", "--bucket", "demo-archive"]
        start_detached("s3server", args)
    deadline = time.monotonic() + 60
    while not credentials.exists():
        if time.monotonic() > deadline or not alive(int(pid_file.read_text())):
            raise SystemExit(f"demo: error: the S3 server did not start; see {DEMO}/s3server.log")
        time.sleep(0.1)
    document: dict[str, object] = json.loads(credentials.read_text())
    return document


def manifests(s3: dict[str, object]) -> str:
    users = s3["users"]
    assert isinstance(users, dict)
    good = users["admin"]
    endpoint = s3["endpoint"]

    def destination(name: str, secret: str, bucket: str, archived: bool) -> str:
        return f"""\
---
apiVersion: destinations.io/v1alpha1
kind: Destination
metadata: {{name: {name}, namespace: {NAMESPACE}}}
spec:
  type: S3Compatible
  environment: Development   # plain http on loopback; Production requires https
  s3Compatible: {{endpoint: "{endpoint}", bucket: {bucket}, forcePathStyle: true}}
  pathPrefix: "deliveries/%DATE%/"
  archived: {str(archived).lower()}
  credentials: {{secretRef: {{name: {secret}}}}}
  verification: {{interval: 10m, timeout: 10s}}
"""

    def secret(name: str, key_id: str, secret_key: str) -> str:
        return f"""\
---
apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: {NAMESPACE}}}
stringData: {{accessKeyId: "{key_id}", secretAccessKey: "{secret_key}"}}
"""

    return "".join(
        [
            f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n",
            secret("s3-good", good["accessKeyId"], good["secretAccessKey"]),
            secret("s3-wrong", good["accessKeyId"], "not-the-right-secret-key"),
            destination("reports", "s3-good", "demo-reports", archived=False),
            destination("wrong-key", "s3-wrong", "demo-reports", archived=False),
            destination("old", "s3-good", "demo-archive", archived=True),
        ]
    )


def up() -> int:
    DEMO.mkdir(exist_ok=True)
    plane = ControlPlane(CLUSTER, Path("."), attached=False)
    if plane.running():
        say(f"control plane already up at {plane.server}")
        plane.bin_dir = find_binaries(binary_set="controlplane")
    else:
        plane.stop()
        plane.bin_dir = find_binaries(binary_set="controlplane")
        started = time.monotonic()
        plane.start()
        say(f"control plane up in {time.monotonic() - started:.1f}s at {plane.server}")
    kubectl = [str(plane.bin_dir / "kubectl"), f"--kubeconfig={plane.kubeconfig}"]
    env = {"KUBECONFIG": str(plane.kubeconfig)}

    s3 = start_s3()
    say(f"S3 server (moto, SigV4 and IAM enforced) at {s3['endpoint']}")

    crd = ROOT / "crds" / "destinations.destinations.io.yaml"
    subprocess.run(
        [*kubectl, "apply", "--server-side", "-f", str(crd)], check=True, stdout=subprocess.DEVNULL
    )
    subprocess.run(
        [*kubectl, "wait", "--for=condition=Established", "crd/destinations.destinations.io"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    say("CRD installed")

    operator = str(Path(sys.executable).parent / "destination-operator")
    start_detached(
        "operator",
        [operator, "run", "--allow-private-endpoints", "--health-port=0", "--metrics-port=0"],
        env,
    )
    say(f"operator running; its log is {DEMO}/operator.log")

    subprocess.run([*kubectl, "apply", "-f", "-"], input=manifests(s3), text=True, check=True)
    started = time.monotonic()
    for name, condition in (
        ("reports", "condition=Verified=True"),
        ("wrong-key", "condition=Verified=False"),
        ("old", "condition=Archived=True"),
    ):
        subprocess.run(
            [
                *kubectl,
                "wait",
                "-n",
                NAMESPACE,
                f"--for={condition}",
                f"dst/{name}",
                "--timeout=120s",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    say(f"all three Destinations report the truth after {time.monotonic() - started:.1f}s:\n")
    subprocess.run([*kubectl, "get", "dst", "-n", NAMESPACE], check=True)
    print()
    say("look around:")
    print(f"  export KUBECONFIG={plane.kubeconfig} PATH={plane.bin_dir}:$PATH")
    print(f"  kubectl describe dst -n {NAMESPACE} wrong-key")
    print(f"  kubectl wait -n {NAMESPACE} --for=condition=Ready dst/reports")
    unarchive = '{"spec":{"archived":false}}'
    print(f"  kubectl patch -n {NAMESPACE} dst old --type=merge -p '{unarchive}'")
    say("stop it all with: make demo-down")
    return 0


def down() -> int:
    for name in ("operator", "s3server"):
        pid_file = DEMO / f"{name}.pid"
        if pid_file.exists():
            stop_pid(int(pid_file.read_text()))
            say(f"{name} stopped")
    shutil.rmtree(DEMO, ignore_errors=True)
    plane = ControlPlane(CLUSTER, Path("."), attached=False)
    if CLUSTER.exists():
        plane.stop()
        shutil.rmtree(CLUSTER, ignore_errors=True)
        say("control plane stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down"])
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return up() if args.command == "up" else down()
    except ControlPlaneError as err:
        print(f"demo: error: {err}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as err:
        print(
            f"demo: error: {' '.join(map(str, err.cmd[:4]))}… failed; see {DEMO}/operator.log",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
