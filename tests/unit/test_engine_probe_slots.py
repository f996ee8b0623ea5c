"""At most `probe_concurrency` probes run at once, however many Destinations are due.

This is the bound docs/sizing.md builds its throughput arithmetic on: the engine's own
probe step runs here, with the storage call replaced by one that takes a known time. The
slots' scheduler on its own: tests/unit/test_fair_slots.py.
"""

from __future__ import annotations

import asyncio
import datetime
import threading
import time
from typing import Any

import pytest

from destination_operator.api.spec import parse_spec
from destination_operator.api.status import Reason
from destination_operator.decide import Observed, SecretView
from destination_operator.engine import probes as probes_module
from destination_operator.engine.cache import Entry
from destination_operator.engine.engine import DONE, Engine, Result
from destination_operator.kube.secrets import StoredSecret
from destination_operator.outcome import Outcome
from destination_operator.settings import OperatorSettings

SLOTS = 3
DUE = 10
PROBE_SECONDS = 0.1
SPEC = {
    "type": "S3Compatible",
    "environment": "Development",
    "s3Compatible": {"endpoint": "http://127.0.0.1:9000", "bucket": "reports"},
    "credentials": {"secretRef": {"name": "s3"}},
}
SECRET = StoredSecret(uid="s-uid", data={"accessKeyId": b"a", "secretAccessKey": b"b"})


class SlowStorage:
    """Stands in for `probe.verify.verify`: counts the probes inside it at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = 0
        self.most = 0
        self.done = 0

    def verify(self, *_: Any, **__: Any) -> Outcome:
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
        time.sleep(PROBE_SECONDS)
        with self.lock:
            self.inside -= 1
            self.done += 1
        return Outcome(verified=True, reason=Reason.ProbeSucceeded, message="ok", probed=True)


def run_probes(
    monkeypatch: pytest.MonkeyPatch, keys: list[tuple[str, str]], *, slots: int
) -> tuple[list[Outcome | None], list[tuple[str, str]]]:
    """Every key due at once through an engine with `slots` probe slots: the outcomes of
    the first round, and the keys handed a freed slot, in the order they were queued."""
    storage = SlowStorage()
    monkeypatch.setattr(probes_module.verify, "verify", storage.verify)
    monkeypatch.setattr(probes_module, "read_secret", lambda *_: SECRET)
    engine = Engine(
        OperatorSettings(probe_concurrency=slots, workers=len(keys)),
    )
    spec = parse_spec(SPEC)
    now = datetime.datetime(2026, 11, 25, tzinfo=datetime.UTC)
    observed = Observed(
        generation=1,
        raw_spec=SPEC,
        annotations={},
        status={},
        secret=SecretView(uid=SECRET.uid, fingerprint="f1"),
        now=now,
    )
    for key in keys:
        engine.cache.put(key, {"metadata": {"name": key[1], "uid": f"u-{key[1]}"}, "spec": SPEC})

    def cached(key: tuple[str, str]) -> Entry:
        entry = engine.cache.get(key)
        assert entry is not None
        return entry

    async def probe(key: tuple[str, str]) -> Outcome | None:
        """The outcome; None for a Destination that got in line (its pass is done, and its
        key comes back when a slot is handed to it)."""
        found = await engine._probe(key, cached(key), spec, observed)
        if isinstance(found, Result):
            assert found == DONE
            return None
        return found

    async def probe_all() -> tuple[list[Outcome | None], list[tuple[str, str]]]:
        # All due at once: the first `slots` probe, the rest return at once, in line (no
        # worker held); as the first ones end, their slots are handed to the next in line.
        first = await asyncio.gather(*(probe(key) for key in keys))
        waiting = sorted(engine.slots.granted) + engine.slots.in_line()
        assert sorted(waiting) == sorted(keys[slots:])
        # Each freed slot is handed to the next in line, whose key is queued again.
        handed: list[tuple[str, str]] = []
        while len(handed) < len(keys) - slots:
            key = await engine.queue.get()
            assert key is not None
            handed.append(key)
            outcome = await probe(key)
            assert outcome is not None and outcome.reason == Reason.ProbeSucceeded
            engine.queue.done(key)
        return first, handed

    try:
        first, handed = asyncio.run(probe_all())
    finally:
        engine.probe_pool.shutdown(wait=True)
        engine.api_pool.shutdown(wait=True)
    assert storage.done == len(keys)
    assert storage.most == slots  # the slots fill, and no probe runs beyond them
    # every slot given back
    assert engine.slots.free == slots and not engine.slots.in_line() and not engine.slots.granted
    return first, handed


def test_probes_beyond_probe_concurrency_wait_for_a_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [("team", f"d{i}") for i in range(DUE)]
    started = time.monotonic()
    first, handed = run_probes(monkeypatch, keys, slots=SLOTS)
    elapsed = time.monotonic() - started
    assert [o.reason if o else None for o in first] == [Reason.ProbeSucceeded] * SLOTS + [None] * (
        DUE - SLOTS
    )
    assert handed == keys[SLOTS:]  # first come, first served
    # ten probes through three slots take at least four rounds
    assert elapsed >= 4 * PROBE_SECONDS * 0.9, elapsed


def test_freed_slots_go_round_the_namespaces_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine's probes wait in one line per namespace: one namespace with many
    Destinations in line delays another's by one turn, not by its whole line (the
    scheduler itself: tests/unit/test_fair_slots.py)."""
    busy = [("busy", f"d{i}") for i in range(5)]
    quiet = ("quiet", "q")
    first, handed = run_probes(monkeypatch, [*busy, quiet], slots=1)
    assert [o.reason if o else None for o in first] == [Reason.ProbeSucceeded] + [None] * 5
    assert handed == [busy[1], quiet, busy[2], busy[3], busy[4]]


def test_a_verification_request_waiting_for_a_slot_survives_another_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A verified Destination asked to verify again finds every slot taken and gets in line;
    a pass over it meanwhile (another event) must still want the probe, or the request is
    lost: the slot handed to it later would find nothing to do."""
    monkeypatch.setattr(probes_module.verify, "verify", SlowStorage().verify)
    engine = Engine(OperatorSettings(probe_concurrency=1, workers=2))
    key = ("team", "asked")
    later = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).isoformat()
    status = {
        "observedGeneration": 1,
        "credentialsFingerprint": "f1",
        "nextVerificationTime": later,
        "conditions": [
            {"type": "Verified", "status": "True", "reason": "ProbeSucceeded",
             "observedGeneration": 1, "lastTransitionTime": later, "message": "ok"},
        ],
    }  # fmt: skip
    meta = {"name": key[1], "namespace": key[0], "uid": "u", "generation": 1}
    meta["annotations"] = {"destinations.io/verify-requested-at": "r1"}
    entry = engine.cache.put(key, {"metadata": meta, "spec": SPEC, "status": status})

    def observed(_key: tuple[str, str], _entry: Entry) -> Observed:
        return Observed(
            generation=1,
            raw_spec=SPEC,
            annotations=meta["annotations"],
            status=status,
            secret=SecretView(uid=SECRET.uid, fingerprint="f1"),
            now=datetime.datetime.now(datetime.UTC),
        )

    monkeypatch.setattr(engine, "_observed", observed)

    async def passes() -> None:
        assert engine.slots.take(("team", "busy"))  # the only slot is taken
        assert await engine._reconcile(key, entry) == DONE
        assert engine.slots.is_waiting(key)
        assert await engine._reconcile(key, entry) == DONE  # an event meanwhile
        assert engine.slots.is_waiting(key), "the request was dropped while in line"
        assert entry.memory.handled_request == ""

    try:
        asyncio.run(passes())
    finally:
        engine.probe_pool.shutdown(wait=True)
        engine.api_pool.shutdown(wait=True)
