"""A Git repository served over smart HTTP on loopback, as a Git forge serves one to Flux.

`GitServer` runs git's own `git-http-backend` as a CGI program for each request, so
the clone Flux's source-controller makes is the protocol a real forge speaks. The
repository is committed to through a working copy beside it (`commit`), as a person
pushing to the forge would; the server itself serves fetches only.
"""

from __future__ import annotations

import os
import subprocess
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote

from threaded import ThreadedServer

# git's own programs live in its exec path (/usr/lib/git-core on Debian)
BACKEND = (
    Path(
        subprocess.run(
            ["git", "--exec-path"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    / "git-http-backend"
)


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "GIT_AUTHOR_NAME": "Platform Team",
            "GIT_AUTHOR_EMAIL": "platform@example.com",
            "GIT_COMMITTER_NAME": "Platform Team",
            "GIT_COMMITTER_EMAIL": "platform@example.com",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(cwd),  # no user configuration changes what is committed
        },
    )
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


class _Backend(BaseHTTPRequestHandler):
    """One request: handed to git-http-backend as CGI, its answer passed back."""

    root: ClassVar[Path]
    requests: ClassVar[list[str]]

    def do_GET(self) -> None:
        self._cgi()

    def do_POST(self) -> None:
        self._cgi()

    def _cgi(self) -> None:
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "PATH_INFO": unquote(path),
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "REMOTE_ADDR": self.client_address[0],
        }
        done = subprocess.run([str(BACKEND)], input=body, env=env, capture_output=True, timeout=60)
        type(self).requests.append(f"{self.command} {path}")
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        if done.returncode != 0 and not head:
            status, payload = 500, done.stderr
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: object) -> None:
        pass


class GitServer:
    """Repository `name` under `folder`, served at `url` (http://127.0.0.1:PORT/NAME.git)
    between enter and exit; `requests` lists the requests it answered."""

    def __init__(self, folder: Path, name: str = "platform") -> None:
        self.root = folder / "served"
        self.root.mkdir(parents=True)
        self.bare = self.root / f"{name}.git"
        self.work = folder / "work"
        self.work.mkdir()
        git("init", "--bare", "--initial-branch=main", str(self.bare), cwd=folder)
        git("init", "--initial-branch=main", cwd=self.work)
        git("remote", "add", "origin", str(self.bare), cwd=self.work)
        handler = type("Backend", (_Backend,), {"root": self.root, "requests": []})
        self.requests: list[str] = handler.requests
        self.server = ThreadedServer(handler, "git-http-backend")
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/{name}.git"

    def commit(self, files: dict[str, str | None], message: str) -> str:
        """Write (or, for None, remove) these files, commit and push to main; the commit's id."""
        for name, text in files.items():
            path = self.work / name
            if text is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        git("add", "--all", cwd=self.work)
        git("commit", "--quiet", "--message", message, cwd=self.work)
        git("push", "--quiet", "origin", "main", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def __enter__(self) -> GitServer:
        self.server.__enter__()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.__exit__()
