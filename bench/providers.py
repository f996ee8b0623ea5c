#!/usr/bin/env python3
"""Probe latency per provider on loopback: N successful probes through `probe.verify.verify`.

    python bench/providers.py                                   # every provider, 200 probes
    python bench/providers.py --count 20 --providers S3Compatible,Webhook
    python bench/providers.py --concurrency 4 --json providers.json

Each provider probes the server its tests use, started the way the tests
start it: moto with signatures and IAM enforced (hack/s3server.py, a child
process) for S3Compatible, AmazonS3 and OracleCloudStorage (these two through
the test-only `endpoint_override`) and GCS's HMAC keys (its interoperability
endpoint); fake-gcs-server behind the token endpoint and token check of
hack/gcsserver.py (a child process) for a GCS service-account key; Azurite
(hack/azurite.py, a child process) for an Azure account key and a container
SAS; hack/ossserver.py for AlibabaOSS and tests/providers/webhookserver.py
(HTTPS, a CA of its own) for Webhook, both in threads of this process, as in
the tests, so they share its interpreter lock with the probes.

Every probe is `probe.verify.verify(...)`, the call the operator makes (the
Secret's fingerprint, the transport, the endpoint guard, then the provider's
write and delete), in WriteDelete mode, with the operator's default timeout
(30 s), timed around the call. The provider and its SDK clients are made once
per provider, as in the operator; the first probe (SDK imports, client
creation) is timed on its own and left out of the percentiles. The object key
is the operator's: `probe.verify.probe_object_key(spec, uid, now)`, fixed per
Destination, and each of the `--concurrency` threads is a Destination of its
own (a uid of its own), so no two probes at once touch one key, as in the
operator. Each thread runs its share of the N probes one after another, so
with `--concurrency 1` each figure is one probe's latency.

Prints progress on stderr and a table on stdout; `--json FILE` also writes a
JSON document with the machine's facts. A failed probe (the servers are set
up for success) or a server that does not start is a harness failure: it is
reported, and the exit code is 1. Latencies never change the exit code.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "hack"), str(ROOT / "tests"), str(ROOT / "tests" / "providers")]

from s3cases import overridden_registry  # noqa: E402
from webhookserver import VERIFICATION_TOKEN, WebhookReceiver  # noqa: E402

from azurite import Azurite  # noqa: E402
from destination_operator.api.spec import DestinationSpec, parse_spec  # noqa: E402
from destination_operator.outcome import Outcome  # noqa: E402
from destination_operator.probe.verify import probe_object_key, verify  # noqa: E402
from destination_operator.providers.gcs import GoogleCloudStorageProvider  # noqa: E402
from destination_operator.providers.registry import Registry  # noqa: E402
from destination_operator.providers.tokencache import shared_tokens  # noqa: E402
from destination_operator.providers.webhook import WebhookProvider  # noqa: E402
from gcsserver import GcsServer  # noqa: E402
from ossserver import OSSServer  # noqa: E402
from s3server import S3Server  # noqa: E402

PACKAGES = (
    "destination-operator",
    "boto3",
    "moto",
    "google-cloud-storage",
    "azure-storage-blob",
    "oss2",
    "urllib3",
)


# --- the servers, each started on first use and stopped at the end --------------------------------


class Servers:
    """The servers of the provider tests, each started on first use and stopped with `stack`."""

    def __init__(self, stack: ExitStack, work: Path) -> None:
        self._stack = stack
        self._work = work

    @cached_property
    def s3(self) -> S3Server:
        return self._stack.enter_context(S3Server(self._work / "s3"))

    @cached_property
    def gcs(self) -> GcsServer:
        return self._stack.enter_context(GcsServer(self._work / "gcs"))

    @cached_property
    def azurite(self) -> Azurite:
        return self._stack.enter_context(Azurite(self._work / "azurite"))

    @cached_property
    def oss(self) -> OSSServer:
        return self._stack.enter_context(OSSServer())

    @cached_property
    def webhook(self) -> WebhookReceiver:
        folder = self._work / "webhook"
        folder.mkdir()
        receiver = WebhookReceiver(folder)
        self._stack.callback(receiver.close)
        return receiver


# --- one function per provider: the Destination, its Secret, the provider ------------------------


@dataclass(frozen=True)
class Target:
    spec: DestinationSpec
    secret: dict[str, bytes]
    registry: Registry | None  # None: the operator's own (`default_registry()`)
    server: str
    before: Callable[[], None] | None = None  # run before each probe, untimed


def spec(kind: str, member: str, fields: dict[str, Any], *, development: bool) -> DestinationSpec:
    """A Destination's spec as a user writes it, in WriteDelete mode, the default timeout."""
    document: dict[str, Any] = {
        "type": kind,
        member: fields,
        "pathPrefix": "probes/",
        "credentials": {"secretRef": {"name": "creds"}},
        "verification": {"mode": "WriteDelete"},
    }
    if development:  # http allowed
        document["environment"] = "Development"
    return parse_spec(document)


def s3_compatible(servers: Servers) -> Target:
    s3 = servers.s3
    fields = {"endpoint": s3.endpoint, "bucket": s3.buckets[0], "forcePathStyle": True}
    return Target(
        spec("S3Compatible", "s3Compatible", fields, development=True),
        s3.users["admin"].secret_data(),
        None,
        "moto (hack/s3server.py)",
    )


def amazon_s3(servers: Servers) -> Target:
    s3 = servers.s3
    fields = {"bucket": s3.buckets[0], "region": "us-east-1"}
    return Target(
        spec("AmazonS3", "amazonS3", fields, development=False),
        s3.users["admin"].secret_data(),
        overridden_registry(s3.endpoint),
        "moto, endpoint_override",
    )


def oracle(servers: Servers) -> Target:
    s3 = servers.s3
    fields = {"bucket": s3.buckets[0], "namespace": "tenancy-ns", "region": "us-ashburn-1"}
    return Target(
        spec("OracleCloudStorage", "oracleCloudStorage", fields, development=False),
        s3.users["admin"].secret_data(),
        overridden_registry(s3.endpoint),
        "moto, endpoint_override",
    )


def gcs_key(servers: Servers) -> Target:
    gcs = servers.gcs
    registry = Registry()
    registry.register(
        GoogleCloudStorageProvider(api_endpoint=gcs.endpoint, token_uris=frozenset({gcs.token_uri}))
    )
    fields = {"bucket": gcs.buckets[0]}
    return Target(
        spec("GoogleCloudStorage", "googleCloudStorage", fields, development=False),
        {"serviceAccountJson": json.dumps(gcs.key_file("admin")).encode()},
        registry,
        "fake-gcs-server + token endpoint (hack/gcsserver.py)",
    )


def gcs_key_uncached(servers: Servers) -> Target:
    """The key file with the token cache emptied before each probe: an exchange per probe,
    as every probe made one before the cache (`providers/tokencache.py`)."""
    target = gcs_key(servers)
    return dataclasses.replace(target, before=shared_tokens().clear)


def gcs_hmac(servers: Servers) -> Target:
    s3 = servers.s3
    registry = Registry()
    registry.register(GoogleCloudStorageProvider(interoperability_endpoint=s3.endpoint))
    admin = s3.users["admin"]
    secret = {
        "hmacAccessKey": admin.access_key_id.encode(),
        "hmacSecret": admin.secret_access_key.encode(),
    }
    fields = {"bucket": s3.buckets[0]}
    return Target(
        spec("GoogleCloudStorage", "googleCloudStorage", fields, development=False),
        secret,
        registry,
        "moto as the interoperability endpoint",
    )


def azure_spec(azurite: Azurite) -> DestinationSpec:
    fields = {
        "storageAccountName": azurite.account,
        "containerName": azurite.containers[0],
        "endpoint": azurite.endpoint,
    }
    return spec("AzureBlobStorage", "azureBlobStorage", fields, development=True)


def azure_key(servers: Servers) -> Target:
    azurite = servers.azurite
    secret = {"accountKey": azurite.key.encode()}
    return Target(azure_spec(azurite), secret, None, "Azurite (hack/azurite.py)")


def azure_sas(servers: Servers) -> Target:
    from azure.storage.blob import generate_container_sas

    azurite = servers.azurite
    now = datetime.datetime.now(datetime.UTC)
    token = generate_container_sas(
        azurite.account,
        azurite.containers[0],
        account_key=azurite.key,
        permission="cwd",
        start=now - datetime.timedelta(hours=2),
        expiry=now + datetime.timedelta(days=1),
    )
    secret = {"sasToken": f"?{token}".encode()}
    return Target(azure_spec(azurite), secret, None, "Azurite, container SAS")


def alibaba_oss(servers: Servers) -> Target:
    oss = servers.oss
    fields = {"bucket": oss.buckets[0], "region": f"oss-{oss.region}", "endpoint": oss.endpoint}
    return Target(
        spec("AlibabaOSS", "alibabaOSS", fields, development=True),
        oss.users["admin"].secret_data(),
        None,
        "hack/ossserver.py (thread here)",
    )


def webhook(servers: Servers) -> Target:
    receiver = servers.webhook
    registry = Registry()
    registry.register(WebhookProvider(ca_bundle=str(receiver.ca_file)))
    return Target(
        spec("Webhook", "webhook", {"url": receiver.url("/hook")}, development=False),
        {"verificationToken": VERIFICATION_TOKEN.encode()},
        registry,
        "webhookserver.py, HTTPS (thread here)",
    )


PROVIDERS: dict[str, Callable[[Servers], Target]] = {
    "S3Compatible": s3_compatible,
    "AmazonS3": amazon_s3,
    "OracleCloudStorage": oracle,
    "GoogleCloudStorage/key": gcs_key,
    "GoogleCloudStorage/key-uncached": gcs_key_uncached,
    "GoogleCloudStorage/hmac": gcs_hmac,
    "AzureBlobStorage/key": azure_key,
    "AzureBlobStorage/sas": azure_sas,
    "AlibabaOSS": alibaba_oss,
    "Webhook": webhook,
}


# --- the timing loop ------------------------------------------------------------------------------


def probe(target: Target, uid: str) -> tuple[float, Outcome]:
    """One verification of `target` as Destination `uid`: (milliseconds, outcome)."""
    if target.before is not None:
        target.before()
    now = datetime.datetime.now(datetime.UTC)
    started = time.perf_counter()
    outcome = verify(
        target.spec,
        target.secret,
        secret_uid="bench-secret-uid",
        object_key=probe_object_key(target.spec, uid, now),
        allow_private=True,
        now=now,
        registry=target.registry,
    )
    return (time.perf_counter() - started) * 1000, outcome


def percentile(ordered: list[float], q: float) -> float:
    """Nearest rank."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def measure(target: Target, count: int, concurrency: int) -> dict[str, Any]:
    """A first probe on its own, then `count` probes by `concurrency` Destinations at once."""
    first_ms, first = probe(target, str(uuid.uuid4()))

    def destination(share: int) -> list[tuple[float, Outcome]]:
        uid = str(uuid.uuid4())
        return [probe(target, uid) for _ in range(share)]

    shares = [count // concurrency + (i < count % concurrency) for i in range(concurrency)]
    with ThreadPoolExecutor(concurrency, thread_name_prefix="probe") as pool:
        started = time.perf_counter()
        runs = [result for share in pool.map(destination, shares) for result in share]
        wall = time.perf_counter() - started

    failed = [outcome for _, outcome in runs if not outcome.verified]
    ordered = sorted(ms for ms, _ in runs)
    row: dict[str, Any] = {
        "server": target.server,
        "count": len(runs),
        "concurrency": concurrency,
        "first_ms": round(first_ms, 1),
        **{
            name: round(percentile(ordered, q), 1) if ordered else None
            for name, q in (("p50_ms", 0.5), ("p90_ms", 0.9), ("p99_ms", 0.99))
        },
        "max_ms": round(ordered[-1], 1) if ordered else None,
        "probes_per_s": round(len(runs) / wall, 1) if wall else None,
        "failures": len(failed),  # of the timed probes
        "first_failed": not first.verified,
    }
    said = [outcome for outcome in (first, *failed) if not outcome.verified]
    if said:
        row["first_failure"] = f"{said[0].reason.value}: {said[0].message}"
    return row


# --- the report ---------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu_model = "unknown"
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu_model = next(line.split(":", 1)[1].strip() for line in lines if "model name" in line)
    except (OSError, StopIteration):
        pass
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "machine": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
        "packages": versions,
    }


def table(results: dict[str, dict[str, Any]]) -> str:
    """provider | n | first | p50 | p90 | p99 | max | probes/s | failures | server."""
    timings = ("first_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms", "probes_per_s")
    header = ["provider", "n", "first", "p50", "p90", "p99", "max", "probes/s", "failures"]
    rows = [[*header, "server"]]
    for name, row in results.items():
        if "error" in row:
            rows.append([name, *["-"] * (len(timings) + 1), "ERROR", row["error"][:80]])
            continue
        failures = f"{row['failures']}{' +first' if row['first_failed'] else ''}"
        figures = ["-" if row[key] is None else str(row[key]) for key in timings]
        rows.append([name, str(row["count"]), *figures, failures, row["server"]])
    widths = [max(len(line[i]) for line in rows) for i in range(len(header))]
    lines = []
    for line in rows:
        cells = [cell.rjust(width) for cell, width in zip(line[1:-1], widths[1:], strict=True)]
        lines.append("  ".join([line[0].ljust(widths[0]), *cells, line[-1]]))
    return "\n".join(lines) + "\n(milliseconds; probes/s: the timed probes over their wall time)"


def selected(asked: str | None) -> list[str]:
    """The providers named (a type alone selects each of its forms), in table order."""
    if not asked:
        return list(PROVIDERS)
    names = {name.strip().lower() for name in asked.split(",") if name.strip()}
    chosen = [
        provider
        for provider in PROVIDERS
        if provider.lower() in names or provider.split("/")[0].lower() in names
    ]
    known = {provider.lower() for provider in PROVIDERS}
    known |= {provider.split("/")[0].lower() for provider in PROVIDERS}
    if names - known:
        raise ValueError(f"unknown {', '.join(sorted(names - known))}")
    return chosen


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="timed probes per provider (200)")
    parser.add_argument("--concurrency", type=int, default=1, help="Destinations at once (1)")
    parser.add_argument(
        "--providers",
        help=f"comma-separated (a type selects each of its forms): {', '.join(PROVIDERS)}",
    )
    parser.add_argument("--json", type=Path, help="also write the JSON document here")
    args = parser.parse_args(argv)
    if args.count < 1 or args.concurrency < 1:
        parser.error("--count and --concurrency must be at least 1")
    try:
        args.providers = selected(args.providers)
    except ValueError as err:
        parser.error(f"--providers: {err}; known: {', '.join(PROVIDERS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    document: dict[str, Any] = {
        "machine": machine(),
        "settings": {
            "count": args.count,
            "concurrency": args.concurrency,
            "mode": "WriteDelete",
            "object_key": "probe.verify.probe_object_key(spec, uid, now): one uid per thread",
        },
        "providers": {},
    }
    results: dict[str, dict[str, Any]] = document["providers"]
    healthy = True
    work = Path(tempfile.mkdtemp(prefix="bench-providers-"))
    with ExitStack() as stack:
        servers = Servers(stack, work)
        for name in args.providers:
            print(f"providers: {name}", file=sys.stderr, flush=True)
            try:
                results[name] = measure(PROVIDERS[name](servers), args.count, args.concurrency)
            except Exception as err:  # noqa: BLE001 - recorded; the other providers run
                traceback.print_exc()
                results[name] = {"error": f"{type(err).__name__}: {err}"}
            if "error" in results[name] or "first_failure" in results[name]:
                healthy = False
                said = results[name].get("error") or results[name]["first_failure"]
                print(f"providers: {name}: harness failure: {said}", file=sys.stderr, flush=True)
    if healthy:
        shutil.rmtree(work, ignore_errors=True)
    else:
        document["logs_kept_in"] = str(work)
        print(f"providers: server logs kept in {work}", file=sys.stderr)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
