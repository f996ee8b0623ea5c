"""The Secret watch's parts that need no API server: the index of uids and resourceVersions,
the metadata-only answers it accepts (and the whole Secrets it refuses), and when a
named Secret's data is read. The watch against a real API server, and that no unrelated
Secret's data reaches the operator: tests/cluster/test_operator_secret_footprint.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from destination_operator.engine import probes as probes_module
from destination_operator.engine.probes import UNREAD, Probes
from destination_operator.engine.secretwatch import SecretIndex, Seen
from destination_operator.kube import secretmeta
from destination_operator.kube.client import ApiUnavailable
from destination_operator.kube.secretmeta import (
    Expired,
    SecretMeta,
    WatchEvent,
    WatchRefused,
    lines,
)
from destination_operator.kube.secrets import StoredSecret
from destination_operator.outcome import fingerprint
from destination_operator.settings import OperatorSettings


def meta(namespace: str, name: str, version: str, uid: str = "u") -> SecretMeta:
    return SecretMeta(namespace, name, uid, version)


def told(index: SecretIndex) -> list[tuple[str, str]]:
    changes: list[tuple[str, str]] = []
    index.on_change = lambda namespace, name: changes.append((namespace, name))
    return changes


def test_the_index_is_listed_only_once_every_scope_was() -> None:
    async def go() -> None:
        index = SecretIndex(["a", "b"])
        waiting = asyncio.create_task(index.listed())
        index.replace("a", [meta("a", "s", "1")])
        await asyncio.sleep(0)
        assert not waiting.done() and not index.is_listed
        index.replace("b", [])
        await asyncio.wait_for(waiting, 1)
        assert index.is_listed

    asyncio.run(go())
    assert SecretIndex().is_listed  # no scope to wait for


def test_a_relist_tells_what_changed_and_only_in_its_scope() -> None:
    index = SecretIndex(["a", "b"])
    changes = told(index)
    index.replace("a", [meta("a", "same", "1"), meta("a", "moved", "1"), meta("a", "gone", "1")])
    index.replace("b", [meta("b", "other", "1")])
    assert sorted(changes) == [("a", "gone"), ("a", "moved"), ("a", "same"), ("b", "other")]
    changes.clear()
    index.replace("a", [meta("a", "same", "1"), meta("a", "moved", "2"), meta("a", "new", "1")])
    assert sorted(changes) == [("a", "gone"), ("a", "moved"), ("a", "new")]
    assert index.get("a", "gone") is None
    assert index.get("a", "moved") == Seen("u", "2")
    assert index.get("b", "other") == Seen("u", "1"), "a relist of a dropped another scope"
    assert len(index) == 4


def test_every_namespace_is_one_scope() -> None:
    index = SecretIndex([None])
    index.replace(None, [meta("a", "s", "1"), meta("b", "s", "1")])
    changes = told(index)
    index.replace(None, [meta("b", "s", "1")])
    assert changes == [("a", "s")]
    assert index.is_listed


def test_watch_events_tell_each_change_once() -> None:
    index = SecretIndex()
    changes = told(index)
    index.apply(WatchEvent("ADDED", meta("a", "s", "1"), "1"))
    index.apply(WatchEvent("MODIFIED", meta("a", "s", "1"), "1"))  # nothing new
    index.apply(WatchEvent("BOOKMARK", None, "5"))
    index.apply(WatchEvent("MODIFIED", meta("a", "s", "6"), "6"))
    assert index.get("a", "s") == Seen("u", "6")
    index.apply(WatchEvent("DELETED", meta("a", "s", "7"), "7"))
    index.apply(WatchEvent("DELETED", meta("a", "s", "7"), "7"))
    assert index.get("a", "s") is None
    # made again under the same name: another uid
    index.apply(WatchEvent("ADDED", meta("a", "s", "8", uid="u2"), "8"))
    assert index.get("a", "s") == Seen("u2", "8")
    assert changes == [("a", "s")] * 4


def partial(name: str, version: str) -> dict[str, Any]:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"namespace": "a", "name": name, "uid": "u", "resourceVersion": version},
    }


def event_line(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode()


def test_watch_events_are_read_as_metadata() -> None:
    assert secretmeta._event(event_line("ADDED", partial("s", "3"))) == WatchEvent(
        "ADDED", meta("a", "s", "3"), "3"
    )
    bookmark = {"kind": "PartialObjectMetadata", "metadata": {"resourceVersion": "9"}}
    assert secretmeta._event(event_line("BOOKMARK", bookmark)) == WatchEvent("BOOKMARK", None, "9")


def test_a_whole_secret_in_a_metadata_watch_is_refused() -> None:
    """Were the Accept header ignored (an old API server, a proxy), the answer would carry
    the data: refused, not parsed on."""
    whole = {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {"namespace": "a", "name": "s", "uid": "u", "resourceVersion": "3"},
        "data": {"k": "dmFsdWU="},
    }
    with pytest.raises(WatchRefused, match="'Secret', not 'PartialObjectMetadata'"):
        secretmeta._event(event_line("ADDED", whole))
    with pytest.raises(WatchRefused, match="not 'PartialObjectMetadataList'"):
        secretmeta._partial({"kind": "SecretList", "items": [whole]}, "PartialObjectMetadataList")


def status(code: int) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "code": code}


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (event_line("ERROR", status(410)), Expired),
        (event_line("ERROR", status(500)), ApiUnavailable),
        (event_line("ERROR", status(429)), ApiUnavailable),
        (event_line("ERROR", status(403)), WatchRefused),
        (event_line("SURPRISE", partial("s", "1")), WatchRefused),
        (b'{"type": "ADDED", "object": {"kind": "PartialObj', ApiUnavailable),
        (b'["not", "an", "event"]', WatchRefused),
        (event_line("ADDED", {"kind": "PartialObjectMetadata"}), WatchRefused),
    ],
    ids=["gone", "5xx", "429", "403", "unknown-type", "cut-short", "not-an-object", "no-meta"],
)
def test_a_bad_watch_event_says_what_to_do(line: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        secretmeta._event(line)


def test_lines_are_split_across_chunks_and_bounded() -> None:
    chunks = [b'{"a":', b"1}\n{", b'"b":2}\n\n{"c"', b":3}"]
    assert list(lines(iter(chunks), 100)) == [b'{"a":1}', b'{"b":2}', b'{"c":3}']
    with pytest.raises(WatchRefused, match="over 10 bytes"):
        list(lines(iter([b"x" * 6, b"y" * 6]), 10))
    # a line of exactly the limit passes, whatever the chunks
    assert list(lines(iter([b"x" * 5, b"x" * 5 + b"\n"]), 10)) == [b"x" * 10]


class Reads:
    """Stands in for `kube.secrets.read_secret`: the Secret at its current version, counted."""

    def __init__(self) -> None:
        self.stored: dict[tuple[str, str], StoredSecret] = {}
        self.count = 0

    def __call__(self, namespace: str, name: str) -> StoredSecret | None:
        self.count += 1
        return self.stored.get((namespace, name))


def probes_over(
    monkeypatch: pytest.MonkeyPatch, index: SecretIndex, reads: Reads
) -> Callable[[], Probes]:
    monkeypatch.setattr(probes_module, "read_secret", reads)

    async def api(fn: Callable[..., Any], *args: Any) -> Any:
        await asyncio.sleep(0.01)  # a read takes a while: others ask meanwhile
        return fn(*args)

    return lambda: Probes(OperatorSettings(), api=api, index=index)


def test_a_named_secret_is_read_once_per_resource_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index = SecretIndex()
    reads = Reads()
    data = {"accessKeyId": b"a", "secretAccessKey": b"b"}
    reads.stored[("a", "s")] = StoredSecret("u", data, "3")
    index.apply(WatchEvent("ADDED", meta("a", "s", "3"), "3"))

    async def go() -> None:
        probes = probes_over(monkeypatch, index, reads)()
        try:
            assert probes.view("a", "absent") is None
            await probes.refresh("a", "absent")
            assert reads.count == 0, "a Secret the watch does not know was read"
            view = probes.view("a", "s")
            assert view is not None and view.fingerprint == UNREAD
            # 100 Destinations naming it ask at once: one read
            await asyncio.gather(*(probes.refresh("a", "s") for _ in range(100)))
            assert reads.count == 1
            view = probes.view("a", "s")
            assert view is not None and view.fingerprint == fingerprint(data, "u")
            await probes.refresh("a", "s")
            assert reads.count == 1, "read again at the same resourceVersion"
            # rotated: the watch shows a newer version, and the next refresh reads it
            rotated = {"accessKeyId": b"a", "secretAccessKey": b"c"}
            reads.stored[("a", "s")] = StoredSecret("u", rotated, "4")
            index.apply(WatchEvent("MODIFIED", meta("a", "s", "4"), "4"))
            view = probes.view("a", "s")
            assert view is not None and view.fingerprint == UNREAD
            await probes.refresh("a", "s")
            assert reads.count == 2
            view = probes.view("a", "s")
            assert view is not None and view.fingerprint == fingerprint(rotated, "u")
            # the read may run ahead of the watch: no second read when the event comes
            reads.stored[("a", "s")] = StoredSecret("u", data, "6")
            index.apply(WatchEvent("MODIFIED", meta("a", "s", "5"), "5"))
            await probes.refresh("a", "s")
            index.apply(WatchEvent("MODIFIED", meta("a", "s", "6"), "6"))
            await probes.refresh("a", "s")
            assert reads.count == 3
            # deleted and made again under the same name: another uid, read again
            reads.stored[("a", "s")] = StoredSecret("u2", data, "9")
            index.apply(WatchEvent("ADDED", meta("a", "s", "9", uid="u2"), "9"))
            await probes.refresh("a", "s")
            assert reads.count == 4
            view = probes.view("a", "s")
            assert view is not None and view.uid == "u2"
            assert view.fingerprint == fingerprint(data, "u2")
        finally:
            probes.shutdown()

    asyncio.run(go())


def test_a_failed_shared_read_fails_each_caller_and_is_tried_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index = SecretIndex()
    index.apply(WatchEvent("ADDED", meta("a", "s", "3"), "3"))
    reads = Reads()

    def refused(namespace: str, name: str) -> StoredSecret | None:
        reads.count += 1
        raise ApiUnavailable("HTTP 503")

    async def go() -> None:
        probes = probes_over(monkeypatch, index, reads)()
        monkeypatch.setattr(probes_module, "read_secret", refused)
        try:
            results = await asyncio.gather(
                *(probes.refresh("a", "s") for _ in range(5)), return_exceptions=True
            )
            assert all(isinstance(found, ApiUnavailable) for found in results), results
            assert reads.count == 1
            view = probes.view("a", "s")
            assert view is not None and view.fingerprint == UNREAD
            monkeypatch.setattr(probes_module, "read_secret", reads)
            reads.stored[("a", "s")] = StoredSecret("u", {"k": b"v"}, "3")
            await probes.refresh("a", "s")
            assert reads.count == 2
            view = probes.view("a", "s")
            assert view is not None and view.fingerprint == fingerprint({"k": b"v"}, "u")
        finally:
            probes.shutdown()

    asyncio.run(go())
