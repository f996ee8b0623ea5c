"""`minio server DIR` for the getting-started test: hack/s3server.py in MinIO's place.

The node has no registry, so the page's MinIO image is replaced by a local image whose
`minio` command is this module. It takes MinIO's command line and environment:

- `minio server DIR`: a bucket for each folder of DIR (as a folder made there before
  MinIO starts is a bucket to MinIO), served on port 9000 of every address;
- MINIO_ROOT_USER / MINIO_ROOT_PASSWORD: the key pair that signs as the root user (the
  s3server's `admin`, allowed everything); any other key is refused, and every request
  is checked for its SigV4 signature.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import s3server

PORT = 9000


def rekey_admin(access_key_id: str, secret_access_key: str) -> None:
    """Give s3server's `admin` user the root key pair in place of the random one moto made."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.iam.models import iam_backends

    [key] = iam_backends[DEFAULT_ACCOUNT_ID]["global"].users["admin"].access_keys
    key.access_key_id = access_key_id
    key.secret_access_key = secret_access_key


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "server":
        print("usage: minio server DIR", file=sys.stderr)
        return 2
    data = Path(argv[1])
    buckets = sorted(p.name for p in data.iterdir() if p.is_dir() and not p.name.startswith("."))
    user, password = os.environ["MINIO_ROOT_USER"], os.environ["MINIO_ROOT_PASSWORD"]
    setup = s3server._setup

    def setup_then_rekey(endpoint: str, names: object) -> dict[str, object]:
        users = setup(endpoint, buckets)
        rekey_admin(user, password)
        return dict(users)

    s3server._setup = setup_then_rekey  # type: ignore[assignment]
    print(f"minio (stand-in): buckets {buckets}", flush=True)
    s3server.serve("0.0.0.0", PORT, Path("/tmp/s3server"), buckets, exit_with_parent=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
