#!/usr/bin/env python3
"""A real S3 server on loopback that checks SigV4 signatures and IAM policies.

moto's server (the same WSGI application `moto_server` runs), served by
werkzeug, with authentication enforced the way moto documents it: the first
unauthenticated calls (moto's INITIAL_NO_AUTH_ACTION_COUNT) create the IAM
users, their access keys and policies, and the buckets; every call after that
must be signed with one of those keys, and the user's IAM policy decides. So a
wrong secret key gets `SignatureDoesNotMatch`, an unknown key id gets
`InvalidAccessKeyId`, and an explicit Deny gets `AccessDenied`.

    python hack/s3server.py --port 9000 --state .servers/s3

runs in the foreground until SIGINT or SIGTERM and writes, in the state folder:

- `credentials.json`: the endpoint, the bucket names, and one key pair per
  user: `admin` (everything), `writer` (PutObject allowed, DeleteObject
  denied: write-only credentials), `reader` (GetObject and ListBucket only).
  It is written last, atomically, so its presence means the server is ready.
- `requests.log`: one line per request: time, method, path, the access key id
  from the Authorization header (or `-`), and the response status. Never the
  signature, the query string or any secret.

Once set up, unsigned requests get S3's `AccessDenied` (403), and moto's own
admin API (`/moto-api/`, which could switch authentication off) is refused.

The tests import `S3Server` to run it as a child process on a free port,
attached to the test process so that it never outlives it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controlplane import die_with_parent, free_port, stop_child

REGION = "us-east-1"
DEFAULT_BUCKETS = ("destinations", "destinations-other")
CREDENTIALS_FILE = "credentials.json"
REQUESTS_LOG = "requests.log"

# The IAM policies the users get. `writer` is what a delivery pipeline with
# write-only credentials looks like: it may upload, and is refused a delete.
POLICIES: dict[str, dict[str, Any]] = {
    "admin": {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    },
    "writer": {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": "*"},
            {"Effect": "Deny", "Action": ["s3:DeleteObject"], "Resource": "*"},
        ],
    },
    "reader": {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"},
        ],
    },
}

_CREDENTIAL_RE = re.compile(r"Credential=([A-Za-z0-9]+)/")


def access_key_id_of(environ: dict[str, Any]) -> str:
    """The access key id a request was signed with, or `-`: never the signature."""
    match = _CREDENTIAL_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if match is None:
        # A presigned URL carries the key id in the query string.
        query = environ.get("QUERY_STRING", "")
        match = re.search(r"X-Amz-Credential=([A-Za-z0-9]+)(?:/|%2F)", query)
    return match.group(1) if match else "-"


def _refuse(start_response: Callable[..., Any], message: str) -> list[bytes]:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>AccessDenied</Code><Message>{message}</Message></Error>\n"
    ).encode()
    start_response(
        "403 Forbidden",
        [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
    )
    return [body]


class RequestLog:
    """WSGI middleware: one line per request, and no moto admin API once auth is on."""

    def __init__(self, app: Callable[..., Iterable[bytes]], path: Path) -> None:
        self.app = app
        self.locked = False
        self._lock = threading.Lock()
        self._file = path.open("a", encoding="utf-8", buffering=1)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        method = environ.get("REQUEST_METHOD", "-")
        path = environ.get("PATH_INFO", "/") or "/"
        key_id = access_key_id_of(environ)
        status = ["-"]

        def recording_start_response(code: str, headers: Any, exc_info: Any = None) -> Any:
            status[0] = code.split(" ", 1)[0]
            return start_response(code, headers, exc_info)

        if self.locked and path.startswith("/moto-api"):
            # /moto-api/reset-auth would switch authentication off again.
            result: Iterable[bytes] = _refuse(
                recording_start_response, "moto's admin API is disabled on this server"
            )
        elif self.locked and key_id == "-":
            # Anonymous: S3 says AccessDenied (moto itself fails on a missing Authorization).
            result = _refuse(recording_start_response, "Anonymous access is not allowed")
        else:
            result = self.app(environ, recording_start_response)
        self._write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {method} {path} {key_id} {status[0]}")
        return result

    def _write(self, line: str) -> None:
        with self._lock:
            self._file.write(line + "\n")

    def close(self) -> None:
        with self._lock:
            self._file.close()


def _setup(endpoint: str, buckets: Iterable[str]) -> dict[str, Any]:
    """Create users, keys, policies and buckets through the server's own API (unauthenticated)."""
    import boto3

    # Any key signs the setup calls: moto does not check them yet.
    session = boto3.session.Session(
        aws_access_key_id="setup", aws_secret_access_key="setup", region_name=REGION
    )
    iam = session.client("iam", endpoint_url=endpoint)
    s3 = session.client("s3", endpoint_url=endpoint)
    users: dict[str, dict[str, str]] = {}
    for user, policy in POLICIES.items():
        iam.create_user(UserName=user)
        iam.put_user_policy(
            UserName=user, PolicyName=f"{user}-policy", PolicyDocument=json.dumps(policy)
        )
        key = iam.create_access_key(UserName=user)["AccessKey"]
        users[user] = {
            "accessKeyId": key["AccessKeyId"],
            "secretAccessKey": key["SecretAccessKey"],
        }
    for bucket in buckets:
        s3.create_bucket(Bucket=bucket)
    return users


def serve(
    host: str, port: int, state: Path, buckets: Iterable[str], *, exit_with_parent: bool
) -> None:
    """Run the server in the foreground until SIGINT or SIGTERM."""
    state.mkdir(parents=True, exist_ok=True)
    credentials_file = state / CREDENTIALS_FILE
    credentials_file.unlink(missing_ok=True)
    buckets = list(buckets)

    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    # No authentication while the server sets itself up.
    settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")
    app = RequestLog(DomainDispatcherApplication(create_backend_app), state / REQUESTS_LOG)
    server = make_server(host, port, app, threaded=True)
    endpoint = f"http://{host}:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, name="s3server", daemon=True)
    thread.start()

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    users = _setup(endpoint, buckets)
    # Those setup calls were the unauthenticated ones; from here on, every call is checked.
    settings.INITIAL_NO_AUTH_ACTION_COUNT = float(ActionAuthenticatorMixin.request_count)
    app.locked = True

    document = {"endpoint": endpoint, "region": REGION, "buckets": buckets, "users": users}
    tmp = credentials_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(credentials_file)
    print(f"s3server: serving {endpoint} (state in {state})", flush=True)

    parent = os.getppid()
    while not stop.wait(0.5):
        if exit_with_parent and os.getppid() != parent:
            break
    server.shutdown()
    thread.join(timeout=5)
    app.close()


# --- for the tests ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    """One user's access key."""

    access_key_id: str
    secret_access_key: str

    def secret_data(self) -> dict[str, bytes]:
        """The key pair as a Kubernetes Secret's `data` (decoded) for the S3 providers."""
        return {
            "accessKeyId": self.access_key_id.encode(),
            "secretAccessKey": self.secret_access_key.encode(),
        }


class S3Server:
    """Run hack/s3server.py as a child process on a free loopback port.

    with S3Server(tmp_path) as server:
        server.endpoint, server.buckets, server.users["writer"]
    """

    def __init__(self, state: Path, *, buckets: Iterable[str] = DEFAULT_BUCKETS) -> None:
        self.state = Path(state)
        self.buckets = list(buckets)
        self.port = 0
        self.endpoint = ""
        self.users: dict[str, KeyPair] = {}
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> S3Server:
        """Start the server and wait until it has written its credentials."""
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / CREDENTIALS_FILE).unlink(missing_ok=True)
        self.port = free_port()
        args = [sys.executable, str(Path(__file__).resolve()), "--port", str(self.port)]
        args += ["--state", str(self.state), "--exit-with-parent"]
        for bucket in self.buckets:
            args += ["--bucket", bucket]
        with (self.state / "server.log").open("wb") as log:
            self._proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + timeout
        credentials = self.state / CREDENTIALS_FILE
        while not credentials.exists():
            if self._proc.poll() is not None:
                tail = (self.state / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"s3server exited with {self._proc.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"s3server was not ready within {timeout}s")
            time.sleep(0.05)
        document = json.loads(credentials.read_text())
        self.endpoint = document["endpoint"]
        self.users = {
            name: KeyPair(pair["accessKeyId"], pair["secretAccessKey"])
            for name, pair in document["users"].items()
        }
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and reap it."""
        proc, self._proc = self._proc, None
        stop_child(proc)

    def requests(self) -> list[str]:
        """The lines of the request log so far."""
        path = self.state / REQUESTS_LOG
        return path.read_text().splitlines() if path.exists() else []

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(state: Path, *, buckets: Iterable[str] = DEFAULT_BUCKETS) -> Iterator[S3Server]:
    """Context manager form of `S3Server`."""
    with S3Server(state, buckets=buckets) as server:
        yield server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=9000, help="TCP port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    parser.add_argument("--state", type=Path, required=True, help="folder for credentials and log")
    parser.add_argument(
        "--bucket",
        action="append",
        dest="buckets",
        help=f"bucket to create (repeatable; default: {', '.join(DEFAULT_BUCKETS)})",
    )
    parser.add_argument(
        "--exit-with-parent", action="store_true", help="stop when the parent process goes"
    )
    args = parser.parse_args(argv)
    buckets = args.buckets or DEFAULT_BUCKETS
    serve(args.host, args.port, args.state, buckets, exit_with_parent=args.exit_with_parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
