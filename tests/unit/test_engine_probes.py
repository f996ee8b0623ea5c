"""Running probes: the Secret is read once per change of its fingerprint, kept while a
Destination names it, and each probe runs in the probe pool under a control of its own; a
workload identity is resolved first, and the probe gets what its cloud issued."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable
from typing import Any

import pytest

from destination_operator.api.spec import parse_spec
from destination_operator.api.status import Reason
from destination_operator.decide import Observed, SecretView
from destination_operator.engine import probes as probes_module
from destination_operator.engine.probes import Probes
from destination_operator.errors import ServiceAccountNotFoundError
from destination_operator.identity.resolve import Resolved
from destination_operator.kube.secrets import SecretForbidden, StoredSecret
from destination_operator.outcome import Outcome, fingerprint
from destination_operator.probe.control import ProbeControl
from destination_operator.providers.issued import AwsSession
from destination_operator.settings import OperatorSettings

SPEC = {
    "type": "S3Compatible",
    "environment": "Development",
    "s3Compatible": {"endpoint": "http://127.0.0.1:9000", "bucket": "reports"},
    "credentials": {"secretRef": {"name": "s3"}},
}
SECRET = StoredSecret(uid="s-uid", data={"accessKeyId": b"a", "secretAccessKey": b"b"})
NOW = datetime.datetime(2026, 11, 25, tzinfo=datetime.UTC)


def observed(print_: str) -> Observed:
    return Observed(
        generation=1,
        raw_spec=SPEC,
        annotations={},
        status={},
        secret=SecretView(uid=SECRET.uid, fingerprint=print_),
        now=NOW,
    )


async def call(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


@pytest.fixture
def controls(monkeypatch: pytest.MonkeyPatch) -> list[ProbeControl]:
    """Probes that succeed at once; the control each ran under."""
    seen: list[ProbeControl] = []

    def verify(*_: Any, control: ProbeControl, **__: Any) -> Outcome:
        seen.append(control)
        return Outcome(verified=True, reason=Reason.ProbeSucceeded, message="ok", probed=True)

    monkeypatch.setattr(probes_module.verify, "verify", verify)
    return seen


def test_the_secret_is_read_once_per_fingerprint(
    monkeypatch: pytest.MonkeyPatch, controls: list[ProbeControl]
) -> None:
    reads: list[tuple[str, str]] = []

    def read(namespace: str, name: str) -> StoredSecret:
        reads.append((namespace, name))
        return SECRET

    monkeypatch.setattr(probes_module, "read_secret", read)
    probes = Probes(OperatorSettings(timeout_seconds=7), api=call)
    spec = parse_spec(SPEC)
    same = observed(fingerprint(SECRET.data, SECRET.uid))

    async def go() -> list[Outcome | None]:
        return [
            await probes.run(("team", "a"), "u-a", spec, same),
            await probes.run(("team", "b"), "u-b", spec, same),  # same Secret: from memory
            await probes.run(("team", "a"), "u-a", spec, observed("changed")),  # read again
        ]

    try:
        found = asyncio.run(go())
        probes.forget_secret(("team", "s3"))  # no Destination names it any more
        asyncio.run(probes.run(("team", "a"), "u-a", spec, same))
    finally:
        probes.pool.shutdown(wait=True)
    assert [o.reason if o else None for o in found] == [Reason.ProbeSucceeded] * 3
    assert reads == [("team", "s3"), ("team", "s3"), ("team", "s3")]
    assert [c.timeout_seconds for c in controls] == [7] * 4  # a control of its own each
    assert len({id(c) for c in controls}) == 4 and not probes.running


def test_a_secret_that_is_not_there_or_forbidden_is_no_probe(
    monkeypatch: pytest.MonkeyPatch, controls: list[ProbeControl]
) -> None:
    answers: list[StoredSecret | Exception | None] = [None, SecretForbidden("forbidden")]

    def read(_namespace: str, _name: str) -> StoredSecret | None:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(probes_module, "read_secret", read)
    probes = Probes(OperatorSettings(), api=call)
    spec = parse_spec(SPEC)
    try:
        absent = asyncio.run(probes.run(("team", "a"), "u-a", spec, observed("f")))
        forbidden = asyncio.run(probes.run(("team", "a"), "u-a", spec, observed("f")))
    finally:
        probes.pool.shutdown(wait=True)
    assert absent is None  # the watch and the API disagree for a moment
    assert forbidden is not None and forbidden.reason == Reason.SecretForbidden
    assert controls == []


def test_a_workload_identity_is_resolved_then_probed_with_what_was_issued(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issued = AwsSession("ASIA", "temporary-secret", "session", 2e9)
    answers: list[Resolved | Exception] = [
        Resolved(issued, "fp-1", "ServiceAccount 'uploader' as role r", ("k",)),
        ServiceAccountNotFoundError("reading ServiceAccount 'uploader': not found"),
    ]
    handed: list[dict[str, Any]] = []

    def resolve(namespace: str, spec: Any, timeout: float) -> Resolved:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def verify(*args: Any, **kwargs: Any) -> Outcome:
        handed.append({"secret_data": args[1], **kwargs})
        return Outcome(
            verified=True,
            reason=Reason.ProbeSucceeded,
            message="ok",
            probed=True,
            fingerprint="fp-1",
        )

    monkeypatch.setattr(probes_module.verify, "verify", verify)
    probes = Probes(OperatorSettings(object_level_identity=True), api=call)
    monkeypatch.setattr(probes.identities, "resolve", resolve)
    raw = {
        "type": "AmazonS3",
        "amazonS3": {"bucket": "reports", "region": "us-east-1"},
        "credentials": {"serviceAccountName": "uploader"},
    }
    spec = parse_spec(raw)
    try:
        first = asyncio.run(probes.run(("team", "a"), "u-a", spec, observed("")))
        seen = probes.identity_view("team", raw)
        second = asyncio.run(probes.run(("team", "a"), "u-a", spec, observed("")))
    finally:
        probes.pool.shutdown(wait=True)
    assert first is not None and first.reason == Reason.ProbeSucceeded
    assert handed[0]["secret_data"] is None and handed[0]["issued"] is issued
    assert handed[0]["credentials_fingerprint"] == "fp-1" and seen.fingerprint == "fp-1"
    # A failure before the exchange: no probe, and nothing read to judge it by any more.
    assert second is not None and second.reason == Reason.ServiceAccountNotFound
    assert len(handed) == 1 and probes.identity_view("team", raw).fingerprint == ""
