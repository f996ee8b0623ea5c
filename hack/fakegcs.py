"""fake-gcs-server, the Google Cloud Storage emulator behind hack/gcsserver.py's checking
front: built into the cache by hack/build-fake-gcs.sh, started on a free loopback port."""

from __future__ import annotations

import contextlib
import http.client
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from controlplane import die_with_parent, free_port

HACK = Path(__file__).resolve().parent


def fake_gcs_binary() -> Path:
    """fake-gcs-server from the cache, built by hack/build-fake-gcs.sh on first use."""
    done = subprocess.run(
        ["bash", str(HACK / "build-fake-gcs.sh")], stdout=subprocess.PIPE, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError("building fake-gcs-server failed (see the messages above)")
    return Path(done.stdout.strip().splitlines()[-1])


def start_emulator(
    binary: Path, state: Path, buckets: Iterable[str], external_url: str
) -> tuple[subprocess.Popen[bytes], int]:
    """fake-gcs-server on a free loopback port with `buckets` (empty); waits until it answers.

    `external_url` is the front's address: the emulator puts it in the upload
    URLs it hands out, so that those calls are checked too.
    """
    data = state / "seed"
    for bucket in buckets:
        (data / bucket).mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [str(binary), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port)]
    args += ["-backend", "memory", "-data", str(data), "-log-level", "warn"]
    args += ["-external-url", external_url]
    with (state / "fake-gcs-server.log").open("wb") as log:
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"fake-gcs-server exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            probe = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            try:
                probe.request("GET", "/storage/v1/b")
                if probe.getresponse().status == 200:
                    return proc, port
            finally:
                probe.close()
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise TimeoutError("fake-gcs-server did not answer within 30s")
        time.sleep(0.05)
