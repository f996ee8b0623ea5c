"""Amazon S3 and Oracle Cloud Storage against a real S3 server that checks signatures and IAM.

Neither type lets a Destination name its endpoint (AWS's comes from the region,
Oracle's from namespace + region), so the tests build their providers with
`endpoint_override` pointing at loopback and hand them to `probe.verify.verify`
(the code path the operator runs) in a registry of their own; the endpoint
guard checks the override like any user endpoint.

The server is moto's (hack/s3server.py). moto does not evaluate IAM or bucket
policy conditions: a bucket policy that denies PutObject when
`s3:x-amz-server-side-encryption` is Null denies every PutObject, with the
header or without. So server-side encryption is proven by reading the
object's encryption back as admin, as S3 reports it on HeadObject; with no
header sent, the server reports none.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from s3cases import HeaderRecorder, amazon_s3_spec, oracle_spec, overridden_registry
from slowservers import TrickleServer

from destination_operator.api.spec import DestinationSpec
from destination_operator.api.status import Reason, StepOutcome
from destination_operator.outcome import Outcome
from destination_operator.probe.verify import verify
from destination_operator.providers.base import PROBE_DIRECTORY
from destination_operator.providers.registry import Registry, default_registry
from destination_operator.providers.s3 import (
    AmazonS3Provider,
    OracleCloudStorageProvider,
    S3Credentials,
    S3Target,
    S3Transport,
    _Sdk,
)
from s3server import S3Server

NOW = datetime.datetime(2026, 11, 22, 7, 0, tzinfo=datetime.UTC)
SECRET_UID = "0b9c7e52-3f4d-4a1e-9c8b-6d2f1e0a7b35"
CANARY = "canary-SECRET-never-show-me-4e8a61d2"
SpecMaker = Callable[..., DestinationSpec]
SPECS: dict[str, SpecMaker] = {"AmazonS3": amazon_s3_spec, "OracleCloudStorage": oracle_spec}


def key(prefix: str = "probes/") -> str:
    return f"{prefix}{PROBE_DIRECTORY}/{uuid.uuid4()}.txt"


@dataclass(frozen=True)
class Case:
    """One row: who signs, where the requests go, and what the Destination must report."""

    name: str
    reason: Reason
    user: str = "admin"  # the S3 server's user whose key id is in the Secret
    secret: str = "real"  # "real": the user's secret key; "canary": CANARY instead
    missing: str = ""  # a Secret key left out
    server: str = "s3"  # s3 | closed | tls | silent | trickle
    bucket: str = ""  # "" : the server's first bucket
    timeout: str = "5s"
    steps: tuple[StepOutcome, StepOutcome] | None = None
    says: str = ""  # a fragment the message must contain


OK, FAILED, SKIPPED = StepOutcome.Succeeded, StepOutcome.Failed, StepOutcome.Skipped

CASES = [
    Case("success", Reason.ProbeSucceeded, steps=(OK, OK), says="wrote and deleted"),
    Case(
        "wrong-secret-key",
        Reason.AuthenticationFailed,
        secret="canary",
        steps=(FAILED, SKIPPED),
        says="SignatureDoesNotMatch",
    ),
    Case(
        "bucket-missing",
        Reason.BucketNotFound,
        bucket="no-such-bucket",
        steps=(FAILED, SKIPPED),
        says="NoSuchBucket",
    ),
    Case(
        "write-refused",
        Reason.AccessDenied,
        user="reader",
        steps=(FAILED, SKIPPED),
        says="PutObject",
    ),
    Case(
        "delete-refused",
        Reason.AccessDenied,
        user="writer",
        steps=(OK, FAILED),
        says="use verification mode Write",
    ),
    Case("unreachable", Reason.EndpointUnreachable, secret="canary", server="closed"),
    Case("tls-untrusted", Reason.TLSError, secret="canary", server="tls", says="certificate"),
    Case(
        "timeout-silent",
        Reason.Timeout,
        secret="canary",
        server="silent",
        timeout="1s",
        says="no complete answer within 1s",
    ),
    Case(
        "timeout-trickle",
        Reason.Timeout,
        secret="canary",
        server="trickle",
        timeout="1s",
        steps=(FAILED, SKIPPED),
        says="no complete answer within 1s",
    ),
    Case(
        "secret-key-missing",
        Reason.SecretKeyMissing,
        secret="canary",
        missing="secretAccessKey",
        says="'secretAccessKey'",
    ),
]


@pytest.fixture
def trickle_server() -> Iterator[TrickleServer]:
    """Answers PutObject a byte every 0.8 s: no socket read ever times out."""
    server = TrickleServer(delay=0.8)
    try:
        yield server
    finally:
        server.close()


def endpoint_for(case: Case, s3: S3Server, request: pytest.FixtureRequest) -> str:
    if case.server == "s3":
        return s3.endpoint
    if case.server == "closed":
        return f"http://127.0.0.1:{request.getfixturevalue('closed_port')}"
    if case.server == "tls":
        return f"https://127.0.0.1:{request.getfixturevalue('untrusted_tls_server')}"
    fixture = {"silent": "silent_server", "trickle": "trickle_server"}[case.server]
    return f"http://127.0.0.1:{request.getfixturevalue(fixture).port}"


def secret_for(case: Case, s3: S3Server) -> dict[str, bytes]:
    pair = s3.users[case.user]
    secret_key = CANARY if case.secret == "canary" else pair.secret_access_key
    data = {"accessKeyId": pair.access_key_id.encode(), "secretAccessKey": secret_key.encode()}
    if case.missing:
        del data[case.missing]
        data["misspelledKey"] = CANARY.encode()  # a value under the wrong name stays unshown
    return data


def requests_for(server: S3Server, object_key: str) -> list[list[str]]:
    """(method, path, access key id, status) of every request that touched `object_key`."""
    return [line.split()[1:] for line in server.requests() if object_key in line]


def messages(outcome: Outcome) -> list[str]:
    return [outcome.message, repr(outcome), *(step.message for step in outcome.steps)]


def probe(
    endpoint: str,
    spec: DestinationSpec,
    data: dict[str, bytes],
    object_key: str,
    registry: Registry | None = None,
) -> Outcome:
    return verify(
        spec,
        data,
        secret_uid=SECRET_UID,
        object_key=object_key,
        allow_private=True,
        now=NOW,
        registry=registry or overridden_registry(endpoint),
    )


@pytest.mark.parametrize("kind", list(SPECS))
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_outcomes(kind: str, case: Case, s3: S3Server, request: pytest.FixtureRequest) -> None:
    endpoint = endpoint_for(case, s3, request)
    data = secret_for(case, s3)
    bucket = case.bucket or s3.buckets[0]
    spec = SPECS[kind](bucket, timeout=case.timeout)
    object_key = key()

    started = time.monotonic()
    outcome = probe(endpoint, spec, data, object_key)
    elapsed = time.monotonic() - started
    print(f"{kind} {case.name}: {outcome.reason.value} in {elapsed:.2f}s: {outcome.message}")

    assert outcome.reason == case.reason, outcome
    assert outcome.verified is (case.reason == Reason.ProbeSucceeded)
    assert case.says in outcome.message
    if case.steps is not None:
        assert tuple(step.outcome for step in outcome.steps) == case.steps
    bound = spec.verification.timeout_seconds
    assert bound is not None and elapsed < bound + 1, elapsed
    for text in messages(outcome):
        assert CANARY not in text
        for value in data.values():  # key id and secret key alike are never shown
            assert value.decode() not in text
    if case.server == "s3" and not case.missing:
        # Path-style and signed with the Secret's key id: the request reached the server.
        path = f"/{bucket}/{object_key}"
        seen = requests_for(s3, object_key)
        assert seen and all(r[1] == path and r[2] == data["accessKeyId"].decode() for r in seen)
    if case.missing:
        assert outcome.last_probe() is None  # found before any connection


@pytest.mark.parametrize("encryption", ["AES256", "aws:kms", "aws:kms:dsse", None])
def test_amazon_s3_server_side_encryption_reaches_the_server(
    s3: S3Server, encryption: str | None
) -> None:
    """Write mode keeps the object; the server's HeadObject says how it was encrypted."""
    import boto3
    from botocore.config import Config

    admin = s3.users["admin"]
    object_key = key("sse/")
    spec = amazon_s3_spec(
        s3.buckets[1], server_side_encryption=encryption, prefix="sse/", mode="Write"
    )
    outcome = probe(s3.endpoint, spec, admin.secret_data(), object_key)
    assert outcome.verified, outcome
    reader = boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        region_name="us-east-1",
        aws_access_key_id=admin.access_key_id,
        aws_secret_access_key=admin.secret_access_key,
        config=Config(s3={"addressing_style": "path"}),
    )
    head = reader.head_object(Bucket=s3.buckets[1], Key=object_key)
    assert head.get("ServerSideEncryption") == encryption


def test_oracle_request_is_path_style_signed_for_its_region_and_checksum_free() -> None:
    """On the wire: the bucket in the path, SigV4 scoped to the OCI region, and none of the
    checksum headers or aws-chunked trailers that OCI's S3 API refuses."""
    recorder = HeaderRecorder()
    try:
        endpoint = f"http://127.0.0.1:{recorder.port}"
        spec = oracle_spec("Reports_1", region="eu-frankfurt-1")
        data = {"accessKeyId": b"ocid1customersecretkey", "secretAccessKey": CANARY.encode()}
        object_key = key()
        outcome = probe(endpoint, spec, data, object_key)
        assert outcome.verified, outcome
        assert [(method, path) for method, path, _ in recorder.requests] == [
            ("PUT", f"/Reports_1/{object_key}"),
            ("DELETE", f"/Reports_1/{object_key}"),
        ]
        _, _, put = recorder.requests[0]
        assert put["host"] == f"127.0.0.1:{recorder.port}"
        assert "/eu-frankfurt-1/s3/aws4_request" in put["authorization"]
        checksum = [h for h in put if h.startswith(("x-amz-checksum", "x-amz-sdk-checksum"))]
        assert checksum == [] and "x-amz-trailer" not in put
        assert "aws-chunked" not in put.get("content-encoding", "")
        assert put["x-amz-content-sha256"] != "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    finally:
        recorder.close()


def test_without_an_override_the_endpoints_are_derived_and_not_guarded() -> None:
    """What the operator ships: no override, so AWS's and OCI's own hosts."""
    amazon = default_registry().get("AmazonS3")
    oracle = default_registry().get("OracleCloudStorage")
    assert isinstance(amazon, AmazonS3Provider) and amazon.endpoint_override is None
    assert isinstance(oracle, OracleCloudStorageProvider) and oracle.endpoint_override is None
    spec = oracle_spec("bkt", namespace="acme", region="us-ashburn-1")
    assert oracle.connect_target(spec).endpoint_url == (
        "https://acme.compat.objectstorage.us-ashburn-1.oraclecloud.com"
    )
    assert oracle.endpoints(spec) == [] and amazon.endpoints(amazon_s3_spec("bkt")) == []
    overridden = AmazonS3Provider(endpoint_override="http://127.0.0.1:9000/")
    assert overridden.endpoints(amazon_s3_spec("bkt")) == ["http://127.0.0.1:9000"]
    assert overridden.connect_target(amazon_s3_spec("bkt")).path_style


def test_a_transport_is_part_of_the_client_and_its_cache_key() -> None:
    """An HTTPS proxy reaches botocore's config; a client is never shared across transports."""
    sdk = _Sdk()
    target = S3Target("b", "us-east-1", "https://127.0.0.1:9", True, True)
    keys = S3Credentials("AKIDEXAMPLE", "secret-one")
    plain = sdk.client(target, keys, 5.0)
    assert sdk.client(target, keys, 5.0, S3Transport()) is plain
    assert plain.meta.config.proxies is None
    proxied = sdk.client(target, keys, 5.0, S3Transport(https_proxy="http://127.0.0.1:3128"))
    assert proxied is not plain
    assert proxied.meta.config.proxies == {"https": "http://127.0.0.1:3128"}


def test_a_ca_bundle_is_what_the_client_trusts(tmp_path: Path, untrusted_tls_server: int) -> None:
    """Trusting the server's own certificate moves the failure from the issuer (nobody vouches
    for it) to the name (it is for untrusted.test, not 127.0.0.1): the bundle was used."""
    endpoint = f"https://127.0.0.1:{untrusted_tls_server}"
    data = {"accessKeyId": b"AKIDEXAMPLE", "secretAccessKey": CANARY.encode()}
    default = probe(endpoint, amazon_s3_spec("bkt"), data, key())
    assert default.reason == Reason.TLSError and "self-signed" in default.message, default
    bundle = tmp_path / "tls.crt"  # the fixture's certificate, in this test's folder
    registry = Registry()
    registry.register(
        AmazonS3Provider(endpoint_override=endpoint, transport=S3Transport(ca_bundle=str(bundle)))
    )
    trusted = probe(endpoint, amazon_s3_spec("bkt"), data, key(), registry)
    assert trusted.reason == Reason.TLSError, trusted
    assert "self-signed" not in trusted.message and "127.0.0.1" in trusted.message, trusted
