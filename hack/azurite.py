#!/usr/bin/env python3
"""Azurite, Microsoft's Azure Storage emulator, on loopback: the real server for the Azure tests.

Installed from npm on first use, pinned, into the cache outside the repository
(`~/.cache/destination-operator/azurite-<version>/`, or under
`$DESTINATION_OPERATOR_CACHE`), then run as a plain `node` process: the blob
service only, in memory, with one custom account given through
`AZURITE_ACCOUNTS`. That variable replaces Azurite's well-known development
account, so only the generated key is accepted: Azurite checks Shared Key
signatures and SAS signatures, expiry and permissions.

Why these choices:

- Azurite 3.35.0 is the last release that runs on Node 20 (3.36 needs Node
  21, 3.37 Node 22).
- `--skipApiVersionCheck`: Azurite 3.35.0 knows service versions up to
  2025-11-05 and refuses newer ones, while the pinned azure-storage-blob sends
  a newer `x-ms-version`. Nothing else is loosened (no `--loose`).
- `--disableTelemetry`: nothing may leave the machine.

    python hack/azurite.py install
    python hack/azurite.py serve --port 10000 --account devstore --container destinations \\
        --state .servers/azurite

`install` prints the path of Azurite's blob entry point; `serve` runs in the
foreground until SIGINT or SIGTERM and writes `credentials.json` (account,
key, endpoint, connection string) into the state folder once the containers
exist. The tests use `Azurite` to run it as a child process on a free port.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from controlplane import die_with_parent, free_port, stop_child

# renovate: datasource=npm depName=azurite
AZURITE_VERSION = "3.35.0"
CREDENTIALS_FILE = "credentials.json"
ACCESS_LOG = "azurite.log"
READY_LINE = "successfully listens on"
DEFAULT_ACCOUNT = "probeaccount"
DEFAULT_CONTAINERS = ("destinations",)


class AzuriteError(RuntimeError):
    """Azurite could not be installed or started."""


def cache_root() -> Path:
    """The cache shared with hack/build-binaries.sh."""
    configured = os.environ.get("DESTINATION_OPERATOR_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "destination-operator"


def install(version: str = AZURITE_VERSION, *, timeout: float = 600.0) -> Path:
    """Azurite's blob entry point (`main.js`), installed from npm the first time.

    One install per version, under a lock (parallel test sessions wait for
    it); it goes into a scratch folder that is renamed into place when
    complete, so a broken install is never taken for a good one.
    """
    root = cache_root()
    folder = root / f"azurite-{version}"
    entry = folder / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"
    marker = folder / ".installed"
    if marker.exists() and entry.exists():
        return entry
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise AzuriteError("node and npm are needed to install Azurite (Node 20 or later)")
    root.mkdir(parents=True, exist_ok=True)
    with (root / f"azurite-{version}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and entry.exists():
            return entry
        scratch = root / f"azurite-{version}.partial"
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
        scratch.mkdir()
        command = [npm, "install", "--prefix", str(scratch), "--no-audit", "--no-fund"]
        command += ["--ignore-scripts", f"azurite@{version}"]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise AzuriteError(f"npm install azurite@{version} took over {timeout:g}s") from None
        if done.returncode != 0:
            raise AzuriteError(
                f"npm install azurite@{version} failed ({done.returncode}):\n{done.stderr[-2000:]}"
            )
        scratch.rename(folder)
        marker.write_text(version + "\n")
    if not entry.exists():
        raise AzuriteError(f"azurite@{version} installed, but {entry} is missing")
    return entry


def new_account_key() -> str:
    """A fresh 64-byte key, base64 as Azure shows account keys."""
    return base64.b64encode(os.urandom(64)).decode()


def connection_string(account: str, key: str, endpoint: str) -> str:
    """The connection string of the account, as the portal would show it for this endpoint."""
    protocol = endpoint.split("://", 1)[0]
    return (
        f"DefaultEndpointsProtocol={protocol};AccountName={account};AccountKey={key};"
        f"BlobEndpoint={endpoint};"
    )


class Azurite:
    """Azurite's blob service as a child process on a free loopback port.

    with Azurite(tmp_path) as azurite:
        azurite.endpoint   # http://127.0.0.1:<port>/<account>
        azurite.key        # the account's key (the only one accepted)
    """

    def __init__(
        self,
        state: Path,
        *,
        account: str = DEFAULT_ACCOUNT,
        containers: Iterable[str] = DEFAULT_CONTAINERS,
        port: int = 0,
        version: str = AZURITE_VERSION,
        oauth_tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.state = Path(state)
        # (certificate, key): HTTPS with OAuth on (`--oauth basic`, which needs HTTPS): a
        # bearer token's audience, issuer prefix and time are checked, not its signature.
        self.oauth_tls = oauth_tls
        self.account = account
        self.containers = list(containers)
        self.version = version
        self.port = port
        self.key = new_account_key()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """The account's blob service URL (path style: the account is the first segment)."""
        scheme = "https" if self.oauth_tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/{self.account}"

    @property
    def connection_string(self) -> str:
        return connection_string(self.account, self.key, self.endpoint)

    def start(self, timeout: float = 60.0, *, attached: bool = True) -> Azurite:
        """Install if needed, start, wait until it listens, and create the containers."""
        entry = install(self.version)
        self.state.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        args = ["node", str(entry), "--blobHost", "127.0.0.1", "--blobPort", str(self.port)]
        args += ["--inMemoryPersistence", "--extentMemoryLimit", "64"]
        args += ["--skipApiVersionCheck", "--disableTelemetry"]
        if self.oauth_tls:
            cert, key = self.oauth_tls
            args += ["--oauth", "basic", "--cert", str(cert), "--key", str(key)]
        env = {**os.environ, "AZURITE_ACCOUNTS": f"{self.account}:{self.key}"}
        log_path = self.state / ACCESS_LOG
        with log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                args,
                cwd=self.state,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent if attached else None,
            )
        deadline = time.monotonic() + timeout
        while READY_LINE not in log_path.read_text(errors="replace"):
            if self._proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise AzuriteError(f"azurite exited with {self._proc.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                self.stop()
                raise AzuriteError(f"azurite was not listening within {timeout:g}s")
            time.sleep(0.05)
        self._create_containers()
        return self

    def _create_containers(self) -> None:
        from azure.core.credentials import AzureNamedKeyCredential
        from azure.storage.blob import BlobServiceClient

        credential = AzureNamedKeyCredential(self.account, self.key)
        with BlobServiceClient(
            self.endpoint, credential=credential, retry_total=0, **self.trust()
        ) as service:
            for name in self.containers:
                service.create_container(name)

    def service_client(self) -> Any:
        """A `BlobServiceClient` with the account key, for tests that look inside."""
        from azure.core.credentials import AzureNamedKeyCredential
        from azure.storage.blob import BlobServiceClient

        credential = AzureNamedKeyCredential(self.account, self.key)
        return BlobServiceClient(
            self.endpoint, credential=credential, retry_total=0, **self.trust()
        )

    def trust(self) -> dict[str, str]:
        """The client options that trust Azurite's certificate (none over plain HTTP)."""
        return {"connection_verify": str(self.oauth_tls[0])} if self.oauth_tls else {}

    def requests(self) -> list[str]:
        """Azurite's access log so far: one line per request (method, path, query, status)."""
        path = self.state / ACCESS_LOG
        return path.read_text(errors="replace").splitlines() if path.exists() else []

    def stop(self) -> None:
        """Stop Azurite (SIGTERM, then SIGKILL) and reap it."""
        proc, self._proc = self._proc, None
        stop_child(proc)

    def terminate(self) -> None:
        """Ask Azurite to stop (SIGTERM) without waiting; for signal handlers."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()

    def wait(self) -> int:
        """Wait for the process to end; its exit code."""
        assert self._proc is not None
        return self._proc.wait()

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(state: Path, **options: Any) -> Iterator[Azurite]:
    """Context manager form of `Azurite`."""
    with Azurite(state, **options) as server:
        yield server


def serve(args: argparse.Namespace) -> int:
    server = Azurite(
        args.state, account=args.account, containers=args.containers or DEFAULT_CONTAINERS
    )
    server.port = args.port
    server.start(attached=True)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: server.terminate())
    document = {
        "account": server.account,
        "accountKey": server.key,
        "endpoint": server.endpoint,
        "connectionString": server.connection_string,
        "containers": server.containers,
    }
    credentials = server.state / CREDENTIALS_FILE
    tmp = credentials.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(credentials)
    print(f"azurite: serving {server.endpoint} (credentials in {credentials})", flush=True)
    return server.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    verbs.add_parser("install", help="install Azurite into the cache; print its entry point")
    run = verbs.add_parser("serve", help="run Azurite's blob service in the foreground")
    run.add_argument("--port", type=int, default=10000, help="TCP port (0: any free port)")
    run.add_argument("--account", default=DEFAULT_ACCOUNT, help="the storage account's name")
    run.add_argument(
        "--container", action="append", dest="containers", help="container to create (repeatable)"
    )
    run.add_argument("--state", type=Path, required=True, help="folder for credentials and log")
    args = parser.parse_args(argv)
    try:
        if args.verb == "install":
            print(install())
            return 0
        return serve(args)
    except AzuriteError as err:
        print(f"azurite: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
