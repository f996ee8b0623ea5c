"""The oldest Kubernetes the project supports (docs/versions.md), and `kubectl explain`.

hack/build-binaries.sh builds MIN_KUBERNETES_VERSION (hack/versions.env) beside the
development version and links it, with the same etcd, into `<bin dir>/minimum/`.
This module starts a control plane of its own from those binaries (its own etcd,
ports and folder; the session's control plane is not touched) and checks there what
the CRD needs from the API server: the committed CRD is stored whole (a field the
version did not know would be dropped without a word), every sample is accepted,
every refusal of invalid_cases.py says what it says on the development version, the
transition rules hold, the selectable fields select, and the operator verifies a
Destination. kubectl explain is read on both versions: no description repeats a
sentence (tests/unit/test_crd_descriptions.py checks the CRD file itself).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dst import (
    GROUP,
    PLURAL,
    VERSION,
    apply,
    condition,
    create,
    destination,
    events,
    refusal,
    s3_destination,
    s3_secret,
    wait_for,
)
from invalid_cases import CASES, VALID
from kubernetes import client
from operator_fixtures import OPERATOR_NAMESPACE, OPERATOR_SA, OperatorProcess
from test_rbac_grants_used import operator_requests

from controlplane import find_binaries
from controlplane_fixtures import own_cluster
from harness import Cluster
from s3server import S3Server

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "destinations.destinations.io.yaml"
SAMPLES = sorted(
    (ROOT / "manifests" / "samples").glob("destinations.io_v1alpha1_destination_*.yaml")
)
VERSIONS = dict(
    line.split("=", 1)
    for line in (ROOT / "hack" / "versions.env").read_text().splitlines()
    if "=" in line and not line.startswith("#")
)
MINIMUM = VERSIONS["MIN_KUBERNETES_VERSION"]


@pytest.fixture(scope="module")
def oldest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A control plane of MIN_KUBERNETES_VERSION with the committed CRD, for this module."""
    minimum = find_binaries() / "minimum"
    if not minimum.is_dir() and os.environ.get("KUBEBUILDER_ASSETS"):
        pytest.skip(f"Kubernetes {MINIMUM} is not in KUBEBUILDER_ASSETS and Go is not installed")
    with own_cluster(
        tmp_path_factory.mktemp("controlplane-minimum"), find_binaries(minimum)
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def oldest_namespace(oldest: Cluster) -> str:
    name = f"minimum-{secrets.token_hex(3)}"
    client.CoreV1Api(oldest.api_client()).create_namespace({"metadata": {"name": name}})
    return name


def test_the_oldest_control_plane_runs_the_minimum_version(oldest: Cluster) -> None:
    versions = json.loads(oldest.kubectl("version", "-o", "json").stdout)
    assert versions["serverVersion"]["gitVersion"] == MINIMUM
    assert versions["clientVersion"]["gitVersion"] == MINIMUM  # kubectl of the same version
    assert VERSIONS["KUBERNETES_VERSION"] != MINIMUM


def test_the_crd_is_stored_whole(oldest: Cluster) -> None:
    """Fields an API server does not know are dropped silently: the stored CRD must equal
    the committed one, selectable fields, CEL reasons and field paths included."""
    committed = yaml.safe_load(CRD.read_text())["spec"]
    stored = json.loads(
        oldest.kubectl("get", "crd", "destinations.destinations.io", "-o", "json").stdout
    )["spec"]
    (want,), (got,) = committed["versions"], stored["versions"]
    assert got["selectableFields"] == want["selectableFields"]
    assert got["schema"] == want["schema"]
    assert got["additionalPrinterColumns"] == want["additionalPrinterColumns"]
    assert got["subresources"] == want["subresources"]
    assert stored["names"] == committed["names"]


def test_every_sample_is_accepted(oldest: Cluster, oldest_namespace: str) -> None:
    assert len(SAMPLES) == 7
    for sample in SAMPLES:
        oldest.kubectl(
            "apply", "--server-side", "--dry-run=server", "-n", oldest_namespace, "-f", str(sample)
        )


def test_every_invalid_case_is_refused_as_on_the_development_version(
    oldest: Cluster, oldest_namespace: str, cluster: Cluster, destination_crd: str
) -> None:
    """All of invalid_cases.py, on both versions: refused, with the same message."""
    development = client.CoreV1Api(cluster.api_client())
    namespace = f"minimum-compare-{secrets.token_hex(3)}"
    development.create_namespace({"metadata": {"name": namespace}})
    try:
        differ: dict[str, tuple[str | None, str | None]] = {}
        for case in CASES:
            old = create(oldest, oldest_namespace, case.manifest(), dry_run=True)
            assert old is not None, f"{case.id}: Kubernetes {MINIMUM} accepted it"
            assert case.expect in old, (case.id, old[:2000])
            new = create(cluster, namespace, case.manifest(), dry_run=True)
            # The one difference: where schema errors stop the CEL rules, the older version
            # quotes the null in `<nil>: Invalid value: "null": some validation rules ...`.
            old = old.replace('<nil>: Invalid value: "null"', "<nil>: Invalid value: null")
            if new != old:
                differ[case.id] = (old, new)
        assert not differ, differ
    finally:
        development.delete_namespace(namespace)


def test_transition_rules_hold(oldest: Cluster, oldest_namespace: str) -> None:
    assert (
        create(oldest, oldest_namespace, destination("moves", VALID["AmazonS3"]), dry_run=False)
        is None
    )
    api = client.CustomObjectsApi(oldest.api_client())

    def patch(spec: dict[str, Any]) -> str | None:
        return refusal(
            lambda: api.patch_namespaced_custom_object(
                GROUP, VERSION, oldest_namespace, PLURAL, "moves", {"spec": spec}
            )
        )

    moved = patch({"amazonS3": {"bucket": "another-bucket"}})
    assert moved is not None and "spec.amazonS3.bucket" in moved and "immutable" in moved, moved
    assert patch({"type": "Webhook"}) is not None
    assert patch({"enabled": False, "pathPrefix": "exports/%DATE%/"}) is None


def test_selectable_fields_select(oldest: Cluster, oldest_namespace: str) -> None:
    specs = {
        "live": VALID["AmazonS3"],
        "archived": VALID["AmazonS3"] | {"archived": True},
        "disabled": VALID["Webhook"] | {"enabled": False},
    }
    for name, spec in specs.items():
        assert create(oldest, oldest_namespace, destination(name, spec), dry_run=False) is None

    def selected(selector: str) -> set[str]:
        out = oldest.kubectl(
            "get", "dst", "-n", oldest_namespace, "--field-selector", selector, "-o", "name"
        ).stdout
        return {line.rsplit("/", 1)[-1] for line in out.split()} & set(specs)

    assert selected("spec.archived=true") == {"archived"}
    assert selected("spec.enabled=false") == {"disabled"}
    assert selected("spec.type=AmazonS3,spec.archived=false") == {"live"}


def test_the_operator_verifies_a_destination(
    oldest: Cluster, oldest_namespace: str, s3: S3Server, tmp_path: Path
) -> None:
    """The operator's API calls (watches, the status subresource, Events, Secrets) work on
    the oldest version, under exactly the RBAC of manifests/rbac."""
    oldest.kubectl("apply", "--server-side", "-k", str(ROOT / "manifests" / "rbac"))
    kubeconfig = oldest.token_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_SA, out_dir=tmp_path)
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log")
    operator.start()
    try:
        # its Secret comes second, so both Events are posted: the failure and the recovery
        apply(oldest, oldest_namespace, s3_destination("on-minimum", s3, secret="s3-minimum"))
        wait_for(oldest, oldest_namespace, "on-minimum", "Verified", "False", timeout=90)
        apply(oldest, oldest_namespace, s3_secret(s3, "s3-minimum"))
        body = wait_for(oldest, oldest_namespace, "on-minimum", "Verified", "True", timeout=90)
        assert condition(body, "Ready")["status"] == "True"
        posted = events(oldest, oldest_namespace, "on-minimum")
        assert sorted((e["type"], e["reason"]) for e in posted) == [
            ("Normal", "Verified"),
            ("Warning", "VerificationFailed"),
        ], posted
        assert operator.alive(), operator.text()[-3000:]
    finally:
        operator.stop()


def test_a_streamed_start_sees_the_stored_destinations(
    oldest: Cluster, oldest_namespace: str, s3: S3Server, tmp_path: Path
) -> None:
    """`initial_streaming` works on the oldest version too (its WatchList gate is beta and
    on by default): the Destinations' watch has sendInitialEvents, no list is made, and a
    Destination stored before the start is verified."""
    oldest.kubectl("apply", "--server-side", "-k", str(ROOT / "manifests" / "rbac"))
    apply(
        oldest,
        oldest_namespace,
        s3_secret(s3, "s3-streamed"),
        s3_destination("streamed", s3, secret="s3-streamed"),
    )
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 1))
    kubeconfig = oldest.token_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_SA, out_dir=tmp_path)
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log")
    operator.start({"DESTINATION_OPERATOR_INITIAL_STREAMING": "true"})
    try:
        wait_for(oldest, oldest_namespace, "streamed", "Verified", "True", timeout=90)
        assert operator.alive(), operator.text()[-3000:]
    finally:
        operator.stop()
    verbs = [
        (entry["verb"], "sendInitialEvents=true" in entry["requestURI"])
        for entry in operator_requests(oldest.plane.audit_log)
        if (entry.get("objectRef") or {}).get("resource") == PLURAL
        and entry.get("requestReceivedTimestamp", "") > since
    ]
    assert ("watch", True) in verbs and not any(verb == "list" for verb, _ in verbs), verbs


# --- kubectl explain ----------------------------------------------------------------------


def object_paths(schema: dict[str, Any], path: str = "destination") -> Iterator[str]:
    """kubectl explain paths of every object in the schema; each explain prints the
    object's description and those of its fields, so together they show every one."""
    if schema.get("type") == "object" and "properties" in schema:
        yield path
        for name, sub in schema["properties"].items():
            yield from object_paths(sub, f"{path}.{name}")
    elif "items" in schema:
        yield from object_paths(schema["items"], path)


def crd_descriptions(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                yield value
            else:
                yield from crd_descriptions(value)
    elif isinstance(node, list):
        for item in node:
            yield from crd_descriptions(item)


def shown_descriptions(text: str) -> list[str]:
    """The descriptions in kubectl explain's output: its runs of lines indented four spaces
    (names, types and enums are indented two), each joined into one line."""
    found: list[str] = []
    run: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("    ") and line.strip():
            run.append(line.strip())
        elif run:
            found.append(" ".join(run))
            run = []
    return found


def repeated_sentences(description: str) -> list[str]:
    """The sentences a description says twice (case and final punctuation ignored)."""
    said = [s.lower().rstrip(".!?") for s in re.split(r"(?<=[.!?])\s+", description) if s]
    return [s for i, s in enumerate(said) if s in said[:i]]


def explain(cluster: Cluster, path: str) -> str:
    deadline = time.monotonic() + 60
    while True:  # the OpenAPI document catches up with a new CRD after a moment
        done = cluster.kubectl("explain", path, check=False)
        if done.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("version", ["development", "minimum"])
def test_kubectl_explain_repeats_no_sentence(version: str, request: pytest.FixtureRequest) -> None:
    if version == "development":
        request.getfixturevalue("destination_crd")
        cluster: Cluster = request.getfixturevalue("cluster")
    else:
        cluster = request.getfixturevalue("oldest")
    schema = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    paths = list(object_paths(schema))
    assert "destination.status.lastProbe" in paths and len(paths) > 10
    # kubectl shows the API server's own words for these, and an array's description
    # joined with its items'; every other description must be read whole somewhere
    standard = {schema["properties"][name]["description"] for name in ("apiVersion", "kind")}
    committed = {" ".join(text.split()) for text in crd_descriptions(schema)} - standard
    shown: list[str] = []
    for path in paths:
        for description in shown_descriptions(explain(cluster, path)):
            assert not repeated_sentences(description), (path, description)
            shown.append(description)
    unread = [text for text in committed if not any(text in seen for seen in shown)]
    assert not unread, unread


def test_the_explain_reader_finds_the_repeat_kubectl_once_showed() -> None:
    shown = (
        "FIELD: lastProbe <Object>\n\n\nDESCRIPTION:\n    What the last probe did. What the"
        "\n    last probe did.\n    \nFIELDS:\n  mode\t<string>\n  enum: WriteDelete, Write\n"
        "    The verification mode used: WriteDelete or Write.\n\n"
    )
    assert shown_descriptions(shown) == [
        "What the last probe did. What the last probe did.",
        "The verification mode used: WriteDelete or Write.",
    ]
    assert repeated_sentences(shown_descriptions(shown)[0]) == ["what the last probe did"]
    assert repeated_sentences(shown_descriptions(shown)[1]) == []
