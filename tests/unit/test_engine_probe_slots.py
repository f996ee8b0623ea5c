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

from destination_operator import engine as engine_module
from destination_operator.api.spec import parse_spec
from destination_operator.api.status import Reason
from destination_operator.decide import Observed, SecretView
from destination_operator.engine import Engine, Entry
from destination_operator.kube.secrets import StoredSecret
from destination_operator.reconcile import Outcome
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
    """Stands in for `reconcile.verify`: counts the probes inside it at once."""

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
    monkeypatch.setattr(engine_module.reconcile, "verify", storage.verify)
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

    async def probe_all() -> list[Outcome | None]:
        probes = [
            engine._probe(
                ("team", f"d{i}"),
                Entry(body={"metadata": {"name": f"d{i}", "uid": f"u{i}"}, "spec": SPEC}),
                spec,
                observed,
            )
            for i in range(DUE)
        ]
        return await asyncio.gather(*probes)

    started = time.monotonic()
    outcomes = asyncio.run(probe_all())
    elapsed = time.monotonic() - started
    engine.probe_pool.shutdown(wait=True)
    engine.api_pool.shutdown(wait=True)

    assert [o.reason if o else None for o in outcomes] == [Reason.ProbeSucceeded] * DUE
    assert storage.done == DUE
    assert storage.most == SLOTS  # the slots fill, and no probe runs beyond them
    # ten probes through three slots take at least four rounds
    assert elapsed >= 4 * PROBE_SECONDS * 0.9, elapsed
