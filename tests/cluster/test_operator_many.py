"""Many Destinations that exist before the operator starts; uninstalling; uid preconditions."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from dst import apply, get, s3_destination, s3_secret, wait_for
from operator_fixtures import OperatorProcess
from test_rbac_grants_used import operator_requests

from destination_operator.kube.client import api_client
from destination_operator.kube.status import patch_status
from harness import Cluster
from s3server import S3Server

pytestmark = pytest.mark.cluster

MANY = 200
PAGE = 20


def verified_count(cluster: Cluster, namespace: str) -> int:
    out = cluster.kubectl("get", "dst", "-n", namespace, "-o", "json").stdout
    count = 0
    for item in json.loads(out)["items"]:
        for cond in (item.get("status") or {}).get("conditions") or []:
            if cond["type"] == "Verified" and cond["status"] == "True":
                count += 1
    return count


def test_an_operator_started_after_many_destinations_verifies_them_all(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    operator.stop()
    try:
        objects = [s3_secret(s3)] + [
            s3_destination(f"d{i:03d}", s3, secret="s3", prefix="many/") for i in range(MANY)
        ]
        apply(cluster, namespace, *objects)
    finally:
        operator.start()
    started = time.monotonic()
    deadline = started + 120
    while (done := verified_count(cluster, namespace)) < MANY:
        assert time.monotonic() < deadline, f"{done} of {MANY} verified after 120 s"
        time.sleep(1)
    # each object probed once: one PUT per Destination under the shared prefix
    puts = [line for line in s3.requests() if "/many/" in line and line.split()[1] == "PUT"]
    assert len(puts) == MANY, len(puts)


def first_lists(
    cluster: Cluster, resource: str, since: str, verb: str = "list"
) -> list[dict[str, list[str]]]:
    """The query of each list (or other `verb`) of `resource` the operator made after
    `since` (an audit timestamp), across namespaces."""
    return [
        parse_qs(urlsplit(entry["requestURI"]).query)
        for entry in operator_requests(cluster.plane.audit_log)
        if entry["verb"] == verb
        and (entry.get("objectRef") or {}).get("resource") == resource
        and entry.get("requestReceivedTimestamp", "") > since
    ]


@contextlib.contextmanager
def started_over_stored(
    cluster: Cluster,
    namespace: str,
    s3: S3Server,
    operator: OperatorProcess,
    stored: int,
    prefix: str,
    env: dict[str, str],
) -> Iterator[str]:
    """Stop the operator, store `stored` Destinations, start it with `env`, and wait until
    it has verified them all; yields the audit timestamp from just before the start, and
    starts the operator again with its usual settings at the end."""
    operator.stop()
    try:
        apply(
            cluster,
            namespace,
            s3_secret(s3),
            *(
                s3_destination(f"{prefix}{i:03d}", s3, secret="s3", prefix=f"{prefix}/")
                for i in range(stored)
            ),
        )
        since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 1))
        operator.start(env)
        deadline = time.monotonic() + 120
        while (done := verified_count(cluster, namespace)) < stored:
            assert time.monotonic() < deadline, f"{done} of {stored} verified after 120 s"
            time.sleep(1)
        yield since
    finally:
        operator.stop()
        operator.start()


def test_the_first_lists_come_in_pages_of_list_chunk_size(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    with started_over_stored(
        cluster, namespace, s3, operator, 3 * PAGE + 1, "p",
        {"DESTINATION_OPERATOR_LIST_CHUNK_SIZE": str(PAGE)},
    ) as since:  # fmt: skip
        for resource in ("destinations", "secrets"):
            pages = first_lists(cluster, resource, since)
            # every page asks for at most PAGE objects; every page after the first continues
            assert pages and all(query.get("limit") == [str(PAGE)] for query in pages), pages
            continued = [query for query in pages if query.get("continue")]
            assert len(continued) == len(pages) - 1, pages
        # this namespace alone holds more than three pages of Destinations
        assert len(first_lists(cluster, "destinations", since)) >= 4


def test_with_initial_streaming_the_destinations_come_in_the_watch_not_a_list(
    cluster: Cluster, namespace: str, s3: S3Server, operator: OperatorProcess
) -> None:
    # stored before the start and never verified: only the streamed events show them
    with started_over_stored(
        cluster, namespace, s3, operator, 2 * PAGE + 1, "w",
        {"DESTINATION_OPERATOR_INITIAL_STREAMING": "true"},
    ) as since:  # fmt: skip
        assert first_lists(cluster, "destinations", since) == []
        watches = first_lists(cluster, "destinations", since, verb="watch")
        streamed = [query for query in watches if query.get("sendInitialEvents") == ["true"]]
        assert streamed, watches
        assert all(query.get("resourceVersionMatch") == ["NotOlderThan"] for query in streamed)
        assert all(query.get("allowWatchBookmarks") == ["true"] for query in streamed)
        # Secrets' metadata is the operator's own watch: still a list first
        assert first_lists(cluster, "secrets", since)


def test_namespaces_with_destinations_delete_without_the_operator(
    cluster: Cluster, s3: S3Server, operator: OperatorProcess
) -> None:
    core_ns = "uninstalled"
    cluster.kubectl("create", "namespace", core_ns)
    apply(cluster, core_ns, s3_secret(s3), s3_destination("left", s3, secret="s3"))
    wait_for(cluster, core_ns, "left", "Ready", "True")
    operator.stop()  # as after `helm uninstall`
    try:
        cluster.kubectl("delete", "namespace", core_ns, "--wait=false")
        cluster.wait_namespace_gone(core_ns, timeout=60)
    finally:
        operator.start()


def test_a_status_patch_for_another_uid_is_refused(
    cluster: Cluster,
    namespace: str,
    s3: S3Server,
    operator: OperatorProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    apply(cluster, namespace, s3_secret(s3), s3_destination("same", s3, secret="s3"))
    body = wait_for(cluster, namespace, "same", "Ready", "True")
    monkeypatch.setenv("KUBECONFIG", cluster.kubeconfig)
    api_client.cache_clear()
    try:
        wrong = "00000000-0000-0000-0000-000000000000"
        assert patch_status(namespace, "same", wrong, {"conditions": []}) is None
        assert get(cluster, namespace, "same")["status"] == body["status"]
        # the same patch with the object's own uid lands
        status = dict(body["status"], target="s3://elsewhere")
        stored = patch_status(namespace, "same", body["metadata"]["uid"], status)
        assert stored is not None and stored["status"]["target"] == "s3://elsewhere"
    finally:
        api_client.cache_clear()
