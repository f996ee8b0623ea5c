"""At most `probe_concurrency` probes run at once, however many Destinations are due.

This is the bound docs/sizing.md builds its throughput arithmetic on: the engine's own
`_probe` runs here, with the storage call replaced by one that takes a known time.
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
from destination_operator.engine import engine as engine_module
from destination_operator.engine.engine import Engine, Entry
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


def in_line(engine: Engine) -> list[tuple[str, str]]:
    """The Destinations in line for a probe slot, namespace by namespace in turn."""
    return [key for line in engine.slot_lines.values() for key in line]


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


def test_probes_beyond_probe_concurrency_wait_for_a_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    storage = SlowStorage()
    monkeypatch.setattr(engine_module.verify, "verify", storage.verify)
    engine = Engine(
        OperatorSettings(probe_concurrency=SLOTS, workers=DUE), secrets=lambda _ns, _name: None
    )

    async def secret_data(*_: Any) -> StoredSecret:
        return SECRET

    monkeypatch.setattr(engine, "_secret_data", secret_data)
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

    keys = [("team", f"d{i}") for i in range(DUE)]
    for key in keys:
        engine.entries[key] = Entry(
            body={"metadata": {"name": key[1], "uid": f"u-{key[1]}"}, "spec": SPEC}
        )

    async def probe(key: tuple[str, str]) -> Outcome | None:
        return await engine._probe(key, engine.entries[key], spec, observed)

    async def probe_all() -> tuple[list[Outcome | None], list[tuple[str, str]]]:
        # All due at once: SLOTS probe, the rest return at once, in line (no worker held);
        # as the first ones end, their slots are handed to the next in line.
        first = await asyncio.gather(*(probe(key) for key in keys))
        assert sorted(engine.slot_granted) + in_line(engine) == keys[SLOTS:]
        # Each freed slot is handed to the next in line, whose key is queued again.
        handed: list[tuple[str, str]] = []
        while len(handed) < DUE - SLOTS:
            key = await engine.queue.get()
            assert key is not None
            handed.append(key)
            outcome = await probe(key)
            assert outcome is not None and outcome.reason == Reason.ProbeSucceeded
            engine.queue.done(key)
        return first, handed

    started = time.monotonic()
    first, handed = asyncio.run(probe_all())
    elapsed = time.monotonic() - started
    engine.probe_pool.shutdown(wait=True)
    engine.api_pool.shutdown(wait=True)

    assert [o.reason if o else None for o in first] == [Reason.ProbeSucceeded] * SLOTS + [None] * (
        DUE - SLOTS
    )
    assert handed == keys[SLOTS:]  # first come, first served
    assert storage.done == DUE
    assert storage.most == SLOTS  # the slots fill, and no probe runs beyond them
    assert engine.slots_free == SLOTS and not in_line(engine)  # every slot given back
    # ten probes through three slots take at least four rounds
    assert elapsed >= 4 * PROBE_SECONDS * 0.9, elapsed


def test_a_slot_handed_to_a_destination_that_went_away_is_not_lost() -> None:
    engine = Engine(OperatorSettings(probe_concurrency=1), secrets=lambda _ns, _name: None)
    try:
        first, second, third = ("team", "a"), ("team", "b"), ("team", "c")
        for key in (first, second, third):
            engine.entries[key] = Entry(body={"metadata": {"name": key[1], "uid": key[1]}})
        assert engine._take_slot(first)
        assert not engine._take_slot(second) and not engine._take_slot(third)
        engine._free_slot()  # the first probe ends: the slot goes to the second
        assert engine.slot_granted == {second} and in_line(engine) == [third]
        engine.forget(*second)  # deleted before it used the slot: the third gets it
        assert engine.slot_granted == {third} and in_line(engine) == []
        del engine.entries[third]  # gone without a word (forget comes later): skipped
        engine.slot_granted.clear()
        engine._free_slot()
        assert engine.slots_free == 1
    finally:
        engine.probe_pool.shutdown(wait=True)
        engine.api_pool.shutdown(wait=True)


def test_freed_slots_go_round_the_namespaces_in_turn() -> None:
    """One namespace with many Destinations in line delays another's by one turn, not by
    its whole line."""
    engine = Engine(OperatorSettings(probe_concurrency=1), secrets=lambda _ns, _name: None)
    try:
        busy = [("busy", f"d{i}") for i in range(5)]
        quiet = ("quiet", "q")
        for key in (*busy, quiet):
            engine.entries[key] = Entry(body={"metadata": {"name": key[1], "uid": key[1]}})
        assert engine._take_slot(busy[0])
        for key in (*busy[1:], quiet):  # the quiet namespace's one comes in last
            assert not engine._take_slot(key)
        handed = []
        for _ in range(5):
            engine._free_slot()
            (granted,) = engine.slot_granted
            handed.append(granted)
            assert engine._take_slot(granted)  # it uses the slot it was handed
        assert handed == [busy[1], quiet, busy[2], busy[3], busy[4]]
    finally:
        engine.probe_pool.shutdown(wait=True)
        engine.api_pool.shutdown(wait=True)
