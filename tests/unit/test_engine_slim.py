"""What the engine keeps of a watched Destination (its memory at 10,000 objects)."""

from __future__ import annotations

from destination_operator.api import VERIFY_REQUESTED_AT
from destination_operator.engine.cache import Entry, packed, slim

BODY = {
    "apiVersion": "destinations.io/v1alpha1",
    "kind": "Destination",
    "metadata": {
        "name": "d",
        "namespace": "ns",
        "uid": "u-1",
        "generation": 3,
        "resourceVersion": "42",
        "finalizers": ["destinations.io/operator"],
        "labels": {"team": "a"},
        "annotations": {
            VERIFY_REQUESTED_AT: "2026-11-24T00:00:00Z",
            "kubectl.kubernetes.io/last-applied-configuration": '{"a whole": "copy"}',
        },
        "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
    },
    "spec": {"type": "S3Compatible"},
    "status": {"observedGeneration": 3},
}


def test_slim_keeps_what_decisions_read_and_drops_the_rest() -> None:
    kept = slim(BODY)
    assert kept == {
        "metadata": {
            "name": "d",
            "namespace": "ns",
            "uid": "u-1",
            "generation": 3,
            "resourceVersion": "42",
            "finalizers": ["destinations.io/operator"],
            "annotations": {VERIFY_REQUESTED_AT: "2026-11-24T00:00:00Z"},
        },
        "spec": {"type": "S3Compatible"},
        "status": packed({"observedGeneration": 3}),
    }
    assert Entry(body=kept).status() == {"observedGeneration": 3}


def test_slim_of_a_new_object_has_empty_status_and_no_annotations() -> None:
    kept = slim({"metadata": {"name": "d", "namespace": "ns", "uid": "u"}, "spec": {}})
    assert Entry(body=kept).status() == {} and "annotations" not in kept["metadata"]


def test_a_written_status_is_the_freshest_until_the_watch_shows_it() -> None:
    watched = {"metadata": {"resourceVersion": "41"}, "status": {"observedGeneration": 2}}
    entry = Entry(body=watched, written_status={"observedGeneration": 3}, written_version=42)
    assert entry.status() == {"observedGeneration": 3}
    entry.drop_written_status_once_watched()  # the watch is behind: kept
    assert entry.written_status == {"observedGeneration": 3}
    entry.body = {"metadata": {"resourceVersion": "42"}, "status": {"observedGeneration": 3}}
    assert entry.status() == {"observedGeneration": 3}
    assert entry.written_status is not None  # reading it changes nothing
    entry.drop_written_status_once_watched()
    assert entry.written_status is None and entry.status() == {"observedGeneration": 3}


def test_a_write_the_watch_already_showed_is_not_kept() -> None:
    # the watch event of the engine's own patch arrived before the patch's answer
    entry = Entry(body={"metadata": {"resourceVersion": "42"}, "status": {"observedGeneration": 3}})
    entry.wrote({"metadata": {"resourceVersion": "42"}, "status": {"observedGeneration": 3}})
    assert entry.written_status is None and entry.status() == {"observedGeneration": 3}
    entry.wrote({"metadata": {"resourceVersion": "43"}, "status": {"observedGeneration": 4}})
    assert entry.written_status == {"observedGeneration": 4}  # the watch is behind this one


def test_a_kept_status_reads_back_unchanged() -> None:
    status = {
        "observedGeneration": 4,
        "conditions": [
            {"type": "Verified", "status": "True", "reason": "ProbeSucceeded", "message": "é ✓"},
            {"type": "Ready", "status": "True", "reason": "ProbeSucceeded", "message": ""},
        ],
        "lastProbe": {"steps": [{"name": "Write", "durationMilliseconds": 7}]},
        "credentialsExpiry": None,
    }
    entry = Entry(body=slim({**BODY, "status": status}))
    assert entry.status() == status
    assert entry.status() is not entry.status()  # each reader gets its own copy
