"""Workload identity without a network: the settings' policy (decided before any call), the
annotations, the operator's own token file, the fingerprint and the credential cache.
The exchanges themselves are in tests/identity/."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import pytest

from destination_operator.api.spec import DestinationSpec, DestinationType, parse_spec
from destination_operator.errors import (
    IdentityNotAllowedError,
    IdentityNotConfiguredError,
)
from destination_operator.identity.aws import ROLE_ANNOTATION, Aws
from destination_operator.identity.clouds import OperatorTarget, Target, read_token_file
from destination_operator.identity.resolve import Identities
from destination_operator.kube.serviceaccounts import IssuedToken, ServiceAccountView
from destination_operator.providers.issued import AwsSession
from destination_operator.providers.tokencache import TokenCache, refresh_margin
from destination_operator.settings import OperatorSettings

ROLE = "arn:aws:iam::123456789012:role/uploader"


class Recorder:
    """A cloud and an API server that record every call made to them."""

    name: ClassVar[str] = "AWS"
    types: ClassVar[frozenset[DestinationType]] = frozenset({DestinationType.AmazonS3})
    annotations: ClassVar[tuple[str, ...]] = (ROLE_ANNOTATION,)

    def __init__(self, tmp: Path, annotations: dict[str, str] | None = None) -> None:
        self.calls: list[str] = []
        self.uid = "uid-1"
        self.annotations = {ROLE_ANNOTATION: ROLE} if annotations is None else annotations
        self.token_file = tmp / "token"
        self.token_file.write_text("operator-token\n")

    def read_account(self, namespace: str, name: str) -> ServiceAccountView:
        self.calls.append(f"read {namespace}/{name}")
        return ServiceAccountView(namespace, name, self.uid, MappingProxyType(self.annotations))

    def token_for(self, account: ServiceAccountView, audience: str, seconds: int) -> IssuedToken:
        self.calls.append(f"token {account.name} {audience} {seconds}")
        return IssuedToken(f"token-of-{account.name}", time.time() + seconds)

    def target(self, account: ServiceAccountView) -> Target:
        return Aws(OperatorSettings(), environ={}).target(account)

    def operator_target(self) -> OperatorTarget:
        target = Target("sts.amazonaws.com", (ROLE,), f"role {ROLE}", {"role": ROLE})
        return OperatorTarget(target, self.token_file)

    def exchange(self, token: str, target: Target, timeout_seconds: float) -> AwsSession:
        self.calls.append(f"exchange {token} {target.key[0]}")
        return AwsSession("ASIA", "secret", "session", time.time() + 3600)


def _identities(recorder: Recorder, **settings: Any) -> Identities:
    return Identities(
        OperatorSettings(**settings),
        clouds={DestinationType.AmazonS3: recorder},
        read_account=recorder.read_account,
        token_for=recorder.token_for,
    )


def _spec(credentials: dict[str, Any], kind: str = "AmazonS3") -> DestinationSpec:
    members = {
        "AmazonS3": ("amazonS3", {"bucket": "example-bucket", "region": "us-east-1"}),
        "GoogleCloudStorage": ("googleCloudStorage", {"bucket": "example-bucket"}),
    }
    member, block = members[kind]
    return parse_spec({"type": kind, member: block, "credentials": credentials})


SA = {"serviceAccountName": "uploader"}
OWN = {"operatorIdentity": {}}


@pytest.mark.parametrize(
    ("credentials", "settings", "said"),
    [
        (SA, {}, "--object-level-identity"),
        (SA, {"operator_identity": True}, "--object-level-identity"),
        (OWN, {}, "--operator-identity"),
        (OWN, {"object_level_identity": True}, "--operator-identity"),
        (OWN, {"default_service_account": "d", "operator_identity": True}, "is off"),
    ],
)
def test_the_settings_refuse_before_any_call(
    tmp_path: Path, credentials: dict[str, Any], settings: dict[str, Any], said: str
) -> None:
    recorder = Recorder(tmp_path)
    with pytest.raises(IdentityNotAllowedError) as refused:
        _identities(recorder, **settings).resolve("team-a", _spec(credentials), 5)
    assert said in refused.value.message
    assert recorder.calls == []  # no ServiceAccount read, no token, no exchange


def test_a_type_without_a_cloud_is_refused_before_any_call(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    identities = _identities(recorder, object_level_identity=True)
    with pytest.raises(IdentityNotAllowedError, match="no workload identity for type"):
        identities.resolve("team-a", _spec(SA, "GoogleCloudStorage"), 5)
    assert recorder.calls == []


def test_a_service_account_is_read_then_its_token_exchanged(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    resolved = _identities(recorder, object_level_identity=True).resolve("team-a", _spec(SA), 5)
    assert recorder.calls == [
        "read team-a/uploader",
        "token uploader sts.amazonaws.com 600",
        f"exchange token-of-uploader {ROLE}",
    ]
    assert isinstance(resolved.issued, AwsSession)
    assert resolved.described == f"ServiceAccount 'uploader' as role {ROLE}"
    assert "token-of" not in repr(resolved)


def test_the_default_service_account_stands_in_for_the_operator(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    identities = _identities(
        recorder, object_level_identity=True, default_service_account="destinations"
    )
    identities.resolve("team-b", _spec(OWN), 5)
    assert recorder.calls[0] == "read team-b/destinations"
    assert not any("operator-token" in call for call in recorder.calls)


def test_the_operators_own_identity_reads_its_token_file(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    identities = _identities(recorder, operator_identity=True)
    resolved = identities.resolve("team-a", _spec(OWN), 5)
    assert recorder.calls == [f"exchange operator-token {ROLE}"]
    assert resolved.described == f"the operator's own role {ROLE}"


def test_a_missing_annotation_is_refused_before_the_token(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, annotations={"other": "x"})
    with pytest.raises(IdentityNotConfiguredError, match=r"has no eks\.amazonaws\.com/role-arn"):
        _identities(recorder, object_level_identity=True).resolve("team-a", _spec(SA), 5)
    assert recorder.calls == ["read team-a/uploader"]


def test_n_resolutions_cost_one_token_and_one_exchange(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    identities = _identities(recorder, object_level_identity=True)
    for _ in range(10):
        identities.resolve("team-a", _spec(SA), 5)
    assert sum(call.startswith("exchange") for call in recorder.calls) == 1
    assert sum(call.startswith("token") for call in recorder.calls) == 1
    assert sum(call.startswith("read") for call in recorder.calls) == 10  # annotations re-read


def test_a_changed_annotation_or_uid_exchanges_anew_and_changes_the_fingerprint(
    tmp_path: Path,
) -> None:
    recorder = Recorder(tmp_path)
    identities = _identities(recorder, object_level_identity=True)
    first = identities.resolve("team-a", _spec(SA), 5)
    recorder.annotations = {ROLE_ANNOTATION: ROLE + "-2"}
    second = identities.resolve("team-a", _spec(SA), 5)
    recorder.uid = "uid-2"  # deleted and made anew under the same name
    third = identities.resolve("team-a", _spec(SA), 5)
    assert len({first.fingerprint, second.fingerprint, third.fingerprint}) == 3
    assert sum(call.startswith("exchange") for call in recorder.calls) == 3
    assert sum(call.startswith("token") for call in recorder.calls) == 2  # per uid, audience


def test_an_aws_operator_identity_needs_its_environment(tmp_path: Path) -> None:
    with pytest.raises(IdentityNotConfiguredError, match="AWS_ROLE_ARN and AWS_WEB_IDENTITY"):
        Aws(OperatorSettings(), environ={}).operator_target()
    token = tmp_path / "token"
    own = Aws(
        OperatorSettings(),
        environ={"AWS_ROLE_ARN": ROLE, "AWS_WEB_IDENTITY_TOKEN_FILE": str(token)},
    ).operator_target()
    assert own.token_file == token and own.target.audience == "sts.amazonaws.com"
    with pytest.raises(IdentityNotConfiguredError, match="is the projected token volume mounted"):
        read_token_file(token, "the projected token file")
    token.write_text("")
    with pytest.raises(IdentityNotConfiguredError, match="holds no usable token"):
        read_token_file(token, "the projected token file")
    token.write_bytes(b"x" * (17 * 1024))
    with pytest.raises(IdentityNotConfiguredError, match="holds no usable token"):
        read_token_file(token, "the projected token file")


# --- the cache ---------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_entries_are_refetched_shortly_before_they_expire() -> None:
    clock = Clock()
    cache = TokenCache(clock=clock)
    made: list[int] = []

    def make() -> tuple[int, float]:
        made.append(1)
        return len(made), clock.now + 3600

    assert cache.fetch(("k",), make) == 1
    clock.now += 3600 - refresh_margin(3600) - 1
    assert cache.fetch(("k",), make) == 1
    clock.now += 2  # within the margin (300 s of an hour): fetched anew
    assert cache.fetch(("k",), make) == 2
    assert refresh_margin(600) == 120 and refresh_margin(3600) == 300


def test_the_cache_given_is_the_one_used_even_empty(tmp_path: Path) -> None:
    """An empty `TokenCache` is falsy (it has a length): Identities kept it anyway, and
    its clock decides when the operator's own token file is read and exchanged again."""
    recorder = Recorder(tmp_path)
    clock = Clock()
    cache = TokenCache(clock=clock)
    identities = Identities(
        OperatorSettings(operator_identity=True),
        clouds={DestinationType.AmazonS3: recorder},
        cache=cache,
    )
    assert identities.cache is cache
    identities.resolve("team-a", _spec(OWN), 5)
    recorder.token_file.write_text("rotated-token\n")  # the kubelet rotates the file
    identities.resolve("team-a", _spec(OWN), 5)
    assert len(cache) == 1
    clock.now = time.time() + 3600 - 299  # within the margin before the credentials' expiry
    identities.resolve("team-a", _spec(OWN), 5)
    exchanges = [call for call in recorder.calls if call.startswith("exchange")]
    assert exchanges == [f"exchange operator-token {ROLE}", f"exchange rotated-token {ROLE}"]


def test_expired_values_are_not_kept_and_failures_keep_nothing() -> None:
    clock = Clock()
    cache = TokenCache(clock=clock)
    cache.put(("old",), "v", clock.now - 1)
    assert cache.get(("old",)) is None and len(cache) == 0

    def fail() -> tuple[str, float]:
        raise IdentityNotConfiguredError("no")

    with pytest.raises(IdentityNotConfiguredError):
        cache.fetch(("k",), fail)
    assert len(cache) == 0


def test_the_cache_is_bounded_and_forgets_on_demand() -> None:
    cache = TokenCache(max_entries=3)
    for n in range(5):
        cache.put((n,), n, time.time() + 3600)
    assert len(cache) == 3 and cache.get((0,)) is None and cache.get((4,)) == 4
    cache.forget((4,))
    assert cache.get((4,)) is None


def test_concurrent_fetches_of_one_key_make_one_call() -> None:
    cache = TokenCache()
    started = threading.Event()
    calls: list[int] = []

    def slow() -> tuple[str, float]:
        calls.append(1)
        started.wait(1)
        return "v", time.time() + 3600

    threads = [threading.Thread(target=cache.fetch, args=(("k",), slow)) for _ in range(8)]
    for thread in threads:
        thread.start()
    started.set()
    for thread in threads:
        thread.join(5)
    assert calls == [1] and cache.get(("k",)) == "v"


def test_a_caller_waits_for_anothers_fetch_no_longer_than_its_wait() -> None:
    """A probe's deadline bounds its wait for another probe's exchange: then it makes its own."""
    cache = TokenCache()
    release = threading.Event()

    def stuck() -> tuple[str, float]:
        release.wait(5)
        return "slow", time.time() + 3600

    first = threading.Thread(target=cache.fetch, args=(("k",), stuck))
    first.start()
    time.sleep(0.1)  # the first holds the key's fetch
    began = time.monotonic()
    assert cache.fetch(("k",), lambda: ("own", time.time() + 3600), wait=0.2) == "own"
    waited = time.monotonic() - began
    release.set()
    first.join(5)
    assert 0.2 <= waited < 2
