"""The AlibabaOSS provider against the OSS server that checks signatures (hack/ossserver.py).

One table, through `probe.verify.verify` (the code path the operator runs): every
probe outcome of TESTING.md (success, wrong key, missing bucket, write or
delete refused, unreachable port, an untrusted certificate, a server that
never answers and one that trickles), the checks made before any connection
(Secret, keys, endpoint guard), virtual-hosted addressing and a CA bundle.
Each case checks the Reason, the steps, what the server saw (signed with V4),
and that no secret value is in any message or log record.
"""

from __future__ import annotations

import datetime
import logging
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest

from destination_operator.api.spec import DestinationSpec, parse_spec
from destination_operator.api.status import Reason, StepOutcome
from destination_operator.errors import InvalidSpecError, ProviderUnavailableError
from destination_operator.outcome import Outcome
from destination_operator.probe.verify import verify
from destination_operator.providers.base import PROBE_BODY, PROBE_DIRECTORY
from destination_operator.providers.oss import (
    AlibabaOSSProvider,
    default_endpoint,
    signing_region,
)
from destination_operator.providers.registry import Registry, default_registry
from ossserver import DEFAULT_DOMAIN, OSSServer

if TYPE_CHECKING:
    from oss_fixtures import TLSServer

pytest_plugins = ["oss_fixtures"]

NOW = datetime.datetime(2026, 11, 22, 7, 0, tzinfo=datetime.UTC)
SECRET_UID = "0c7f4b2e-5d1a-4f8e-9b36-a2e4d81f7c05"
BUCKET = "destinations"
REGION = "oss-cn-hangzhou"  # the server's region is cn-hangzhou
S, F, SKIP = StepOutcome.Succeeded, StepOutcome.Failed, StepOutcome.Skipped


def oss_spec(
    endpoint: str | None,
    *,
    bucket: str = BUCKET,
    region: str = REGION,
    mode: str = "WriteDelete",
    timeout: str = "5s",
) -> DestinationSpec:
    """An AlibabaOSS spec as a user would write it (Development: http allowed)."""
    member = {"bucket": bucket, "region": region}
    if endpoint is not None:
        member["endpoint"] = endpoint
    return parse_spec(
        {
            "type": "AlibabaOSS",
            "environment": "Development",
            "alibabaOSS": member,
            "pathPrefix": "probes/",
            "credentials": {"secretRef": {"name": "oss-creds"}},
            "verification": {"mode": mode, "timeout": timeout},
        }
    )


@dataclass(frozen=True)
class Case:
    """One probe: what it is given, and what must come of it."""

    id: str
    reason: Reason
    secret: str = "admin"  # a user of the server, or a broken Secret (see `secret_data`)
    endpoint: str = "oss"  # which server the spec points at (see `endpoint_of`)
    bucket: str = BUCKET
    region: str = REGION
    mode: str = "WriteDelete"
    timeout: str = "5s"
    allow_private: bool = True
    steps: tuple[StepOutcome, StepOutcome] | None = None  # (Write, Delete)
    says: str = ""  # in the outcome's message
    served: tuple[tuple[str, int], ...] = ()  # (method, status) the OSS server saw for the key
    object_left: bool = False  # the probe object is still in the bucket afterwards
    within: float = 5.0  # seconds the whole verification may take


CASES = [
    Case(
        "success",
        Reason.ProbeSucceeded,
        steps=(S, S),
        says="wrote and deleted",
        served=(("PUT", 200), ("DELETE", 204)),
    ),
    Case(
        "virtual-hosted-endpoint",
        Reason.ProbeSucceeded,
        endpoint="virtual",
        steps=(S, S),
        served=(("PUT", 200), ("DELETE", 204)),
    ),
    Case(
        "https-with-the-ca-bundle",
        Reason.ProbeSucceeded,
        endpoint="tls",
        steps=(S, S),
        served=(("PUT", 200), ("DELETE", 204)),
    ),
    Case(
        "write-only-credentials-in-mode-write",
        Reason.ProbeSucceeded,
        secret="writer",
        mode="Write",
        steps=(S, SKIP),
        served=(("PUT", 200),),
        object_left=True,
    ),
    Case(
        "wrong-secret",
        Reason.AuthenticationFailed,
        secret="wrong-secret",
        steps=(F, SKIP),
        says="SignatureDoesNotMatch",
        served=(("PUT", 403),),
    ),
    Case(
        "unknown-key-id",
        Reason.AuthenticationFailed,
        secret="unknown-id",
        steps=(F, SKIP),
        says="InvalidAccessKeyId",
        served=(("PUT", 403),),
    ),
    Case(
        "bucket-missing",
        Reason.BucketNotFound,
        bucket="no-such-bucket",
        steps=(F, SKIP),
        says="NoSuchBucket",
        served=(("PUT", 404),),
    ),
    Case(
        "write-refused",
        Reason.AccessDenied,
        secret="no-access",
        steps=(F, SKIP),
        says="PutObject: AccessDenied",
        served=(("PUT", 403),),
    ),
    Case(
        "delete-refused",
        Reason.AccessDenied,
        secret="writer",
        steps=(S, F),
        says="DeleteObject: AccessDenied",
        served=(("PUT", 200), ("DELETE", 403)),
        object_left=True,
    ),
    Case(
        "region-not-the-buckets",
        Reason.InvalidSpec,
        region="oss-cn-shanghai",
        steps=(F, SKIP),
        says="spec.alibabaOSS.region",
        served=(("PUT", 400),),
    ),
    Case(
        "bucket-in-another-region",
        Reason.InvalidSpec,
        bucket="beijing-bucket",
        steps=(F, SKIP),
        says="use endpoint oss-cn-beijing.aliyuncs.com",
        served=(("PUT", 403),),
    ),
    Case("unreachable", Reason.EndpointUnreachable, endpoint="closed", steps=(F, SKIP)),
    Case(
        "untrusted-certificate",
        Reason.TLSError,
        endpoint="untrusted-tls",
        steps=(F, SKIP),
        says="certificate",
    ),
    Case(
        "server-never-answers",
        Reason.Timeout,
        endpoint="silent",
        timeout="1s",
        steps=(F, SKIP),
        within=3.0,
    ),
    Case(
        "server-trickles-its-answer",
        Reason.Timeout,
        endpoint="trickle",
        timeout="1s",
        steps=(F, SKIP),
        says="no complete answer within 1s",
        within=3.0,
    ),
    Case("secret-without-key-id", Reason.SecretKeyMissing, secret="no-id", says="accessKeyId"),
    Case(
        "secret-without-key-secret",
        Reason.SecretKeyMissing,
        secret="no-secret",
        says="accessKeySecret",
    ),
    Case("secret-absent", Reason.SecretNotFound, secret="absent", says="'oss-creds'"),
    Case("loopback-not-allowed", Reason.EndpointBlocked, allow_private=False),
]


def secret_data(case: Case, server: OSSServer, canary: str) -> dict[str, bytes] | None:
    """The Secret's data for `case`: a server user's keys, or a broken Secret with `canary`."""
    admin = server.users["admin"].secret_data()
    if case.secret in server.users:
        return server.users[case.secret].secret_data()
    broken: dict[str, dict[str, bytes] | None] = {
        "wrong-secret": {**admin, "accessKeySecret": f"{canary}-wrong".encode()},
        "unknown-id": {"accessKeyId": b"LTAI0unknown0key0id", "accessKeySecret": canary.encode()},
        "no-id": {"accessKeySecret": canary.encode(), "accessKeyID": canary.encode()},
        "no-secret": {"accessKeyId": admin["accessKeyId"], "secretAccessKey": canary.encode()},
        "absent": None,
    }
    return broken[case.secret]


def endpoint_of(case: Case, request: pytest.FixtureRequest, server: OSSServer) -> str:
    """The spec's endpoint: a fixture's server, started only for the cases that use it."""
    if case.endpoint == "oss":
        return server.endpoint
    if case.endpoint == "virtual":  # a host name: oss2 puts the bucket in front of it
        return f"http://{DEFAULT_DOMAIN}:{server.port}"
    if case.endpoint == "tls":
        tls: TLSServer = request.getfixturevalue("oss_tls_server")
        return tls.server.endpoint
    if case.endpoint == "closed":
        return f"http://127.0.0.1:{request.getfixturevalue('closed_port')}"
    if case.endpoint == "untrusted-tls":
        return f"https://127.0.0.1:{request.getfixturevalue('untrusted_tls_server')}"
    if case.endpoint == "silent":
        return f"http://127.0.0.1:{request.getfixturevalue('silent_server').port}"
    if case.endpoint == "trickle":
        return f"http://127.0.0.1:{request.getfixturevalue('trickle_server').port}"
    raise AssertionError(f"no endpoint {case.endpoint!r}")


def loopback_resolver(host: str, port: int) -> Sequence[str]:
    """The test domain and its buckets resolve to loopback; nothing else resolves."""
    if host == DEFAULT_DOMAIN or host.endswith("." + DEFAULT_DOMAIN):
        return ["127.0.0.1"]
    raise OSError(f"{host} does not resolve in this test")


def messages(outcome: Outcome) -> list[str]:
    return [outcome.message, *(step.message for step in outcome.steps)]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_probe(
    case: Case,
    oss_server: OSSServer,
    oss_canary: str,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = oss_server
    endpoint = endpoint_of(case, request, server)
    registry = None
    if case.endpoint == "tls":
        tls: TLSServer = request.getfixturevalue("oss_tls_server")
        server = tls.server
        registry = Registry()
        registry.register(AlibabaOSSProvider(ca_bundle=str(tls.ca_file)))
    data = secret_data(case, server, oss_canary)
    object_key = f"probes/{PROBE_DIRECTORY}/{uuid.uuid4()}.txt"
    spec = oss_spec(
        endpoint, bucket=case.bucket, region=case.region, mode=case.mode, timeout=case.timeout
    )

    started = time.monotonic()
    outcome = verify(
        spec,
        data,
        secret_uid=SECRET_UID,
        object_key=object_key,
        allow_private=case.allow_private,
        now=NOW,
        registry=registry,
        resolve=loopback_resolver,
    )
    elapsed = time.monotonic() - started

    assert outcome.reason == case.reason, outcome
    assert outcome.verified == (case.reason == Reason.ProbeSucceeded)
    assert case.says in outcome.message
    assert elapsed < case.within, elapsed
    steps = tuple(step.outcome for step in outcome.steps) or None
    assert steps == case.steps
    seen = server.requests_for(object_key)
    assert [(r.method, r.status) for r in seen] == list(case.served)
    assert all(r.signature_version == "V4" for r in seen)
    stored = server.object(case.bucket, object_key)
    assert stored == (PROBE_BODY if case.object_left else None)
    if case.endpoint == "silent":
        assert request.getfixturevalue("silent_server").accepted == 1  # one attempt, no retry
    if case.endpoint == "trickle":  # the request arrived; its answer came too slowly
        sent = request.getfixturevalue("trickle_server").requests
        assert [line.split()[:2] for line in sent] == [
            ["PUT", f"/{BUCKET}/{quote(object_key, safe='')}"]
        ]

    values = [v.decode() for v in (data or {}).values()]
    for text in [*messages(outcome), repr(outcome)]:
        assert oss_canary not in text
        assert not [v for v in values if v in text]
    for record in caplog.records:
        line = record.getMessage()
        assert oss_canary not in line and not [v for v in values if v in line], line


@pytest.mark.parametrize(
    ("endpoint", "guarded"),
    [
        (None, []),
        ("http://127.0.0.1:9100", ["http://127.0.0.1:9100"]),
        ("http://localhost:9100/", ["http://localhost:9100"]),
        (
            "https://oss-cn-hangzhou-internal.aliyuncs.com",
            [
                "https://oss-cn-hangzhou-internal.aliyuncs.com",
                "https://destinations.oss-cn-hangzhou-internal.aliyuncs.com",
            ],
        ),
    ],
)
def test_the_guard_sees_every_host_the_author_chose(
    endpoint: str | None, guarded: list[str]
) -> None:
    """Alibaba's own endpoint is not guarded; an override is, with the bucket's host under it."""
    assert AlibabaOSSProvider().endpoints(oss_spec(endpoint)) == guarded


def test_an_endpoint_with_a_path_is_refused() -> None:
    """oss2 would drop the path silently and write elsewhere than the author meant."""
    with pytest.raises(InvalidSpecError, match="no path"):
        AlibabaOSSProvider().endpoints(oss_spec("https://oss.example.com/some/where"))


def test_region_id_gives_endpoint_and_signing_region() -> None:
    assert default_endpoint("oss-ap-southeast-1") == "https://oss-ap-southeast-1.aliyuncs.com"
    assert signing_region("oss-ap-southeast-1") == "ap-southeast-1"


def test_the_default_registry_serves_alibaba_oss() -> None:
    assert isinstance(default_registry().get("AlibabaOSS"), AlibabaOSSProvider)


def test_without_oss2_the_probe_names_the_extra(
    oss_server: OSSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "oss2", None)  # `import oss2` now fails
    outcome = verify(
        oss_spec(oss_server.endpoint),
        oss_server.users["admin"].secret_data(),
        secret_uid=SECRET_UID,
        object_key=f"probes/{PROBE_DIRECTORY}/no-sdk.txt",
        allow_private=True,
        now=NOW,
    )
    assert outcome.reason == ProviderUnavailableError.reason
    assert "pip install 'destination-operator[oss]'" in outcome.message
    assert oss_server.requests_for(f"probes/{PROBE_DIRECTORY}/no-sdk.txt") == []
