"""The engine's cache: one entry per Destination, and which Destinations name which Secret."""

from __future__ import annotations

from typing import Any

from destination_operator.engine.cache import Cache, key_of, slim


def body(name: str, secret: str | None, *, uid: str = "u", version: str = "1") -> dict[str, Any]:
    spec: dict[str, Any] = {"credentials": {"secretRef": {"name": secret}}} if secret else {}
    meta = {"name": name, "namespace": "ns", "uid": uid, "resourceVersion": version}
    return slim({"metadata": meta, "spec": spec})


def test_a_secret_finds_the_destinations_that_name_it() -> None:
    cache = Cache()
    cache.put(("ns", "a"), body("a", "s3"))
    cache.put(("ns", "b"), body("b", "s3"))
    cache.put(("ns", "c"), body("c", "other"))
    assert sorted(cache.users("ns", "s3")) == [("ns", "a"), ("ns", "b")]
    assert cache.users("elsewhere", "s3") == []
    assert len(cache) == 3 and ("ns", "c") in cache


def test_a_secret_no_destination_names_any_more_is_let_go() -> None:
    unused: list[tuple[str, str]] = []
    cache = Cache(on_secret_unused=unused.append)
    cache.put(("ns", "a"), body("a", "s3"))
    cache.put(("ns", "b"), body("b", "s3"))
    cache.put(("ns", "a"), body("a", "other"))  # a names another Secret now
    assert unused == [] and cache.users("ns", "s3") == [("ns", "b")]
    # a new body naming the same Secret (the echo of a status patch, say): still named,
    # so its data is kept, not let go and read again
    cache.put(("ns", "b"), body("b", "s3", version="2"))
    cache.put(("ns", "a"), body("a", "other", version="2"))
    assert unused == [] and cache.users("ns", "s3") == [("ns", "b")]
    cache.put(("ns", "a"), body("a", None, version="3"))  # a names none now
    assert unused == [("ns", "other")]
    unused.clear()
    entry = cache.pop(("ns", "b"))
    assert entry is not None and unused == [("ns", "s3")]
    assert cache.pop(("ns", "b")) is None and cache.get(("ns", "b")) is None


def test_a_new_body_keeps_the_entrys_memory_and_written_status() -> None:
    cache = Cache()
    key = key_of(body("a", None))
    entry = cache.put(key, body("a", None, version="1"))
    entry.wrote({"status": {"observedGeneration": 2}, "metadata": {"resourceVersion": "5"}})
    assert cache.put(key, body("a", None, version="3")) is entry
    assert entry.status() == {"observedGeneration": 2}  # the watch has not caught up
    cache.put(key, body("a", None, version="5"))
    assert entry.written_status is None  # it has: the watched body is the truth again
