"""What the real kstatus library concludes about Destinations, pinned through hack/kstatus.

The operator's condition design (Ready, Reconciling, Stalled; Ready absent while disabled
or archived; CredentialsExpiring beside them, which kstatus does not read) rests on these
verdicts of sigs.k8s.io/cli-utils status.Compute, the code Flux and kpt run. If a new
cli-utils version changes one, this file says which.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from controlplane import ControlPlaneError, find_binaries
from kstatus import KstatusError, binary, compute, results

API_VERSION = "destinations.io/v1alpha1"


@pytest.fixture(scope="module")
def bin_dir() -> Path:
    """DESTINATION_OPERATOR_BIN_DIR, or the folder hack/build-binaries.sh prints."""
    try:
        found = find_binaries()
        binary(found)
    except (ControlPlaneError, KstatusError) as err:
        pytest.fail(str(err), pytrace=False)
    return found


def condition(type_: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message or f"{type_} is {status}",
        "observedGeneration": 1,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }


def destination(
    name: str,
    *conditions: dict[str, Any],
    generation: int = 1,
    observed: int | None = 1,
    status: bool = True,
    deleting: bool = False,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": "team-a",
        "generation": generation,
        "uid": "00000000-0000-0000-0000-000000000001",
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        metadata["finalizers"] = ["destinations.io/cleanup"]
    obj: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "Destination",
        "metadata": metadata,
        "spec": {
            "type": "GoogleCloudStorage",
            "googleCloudStorage": {"bucket": "example-bucket"},
            "credentials": {"secretRef": {"name": "gcs"}},
        },
    }
    if status:
        obj["status"] = {"conditions": list(conditions)}
        if observed is not None:
            obj["status"]["observedGeneration"] = observed
    return obj


READY = condition("Ready", "True", "Ready")
VERIFIED = condition("Verified", "True", "ProbeSucceeded")

CASES: list[tuple[str, dict[str, Any], str]] = [
    ("no-status", destination("no-status", status=False), "Current"),
    (
        # the generation check comes before any condition: Ready=True does not help
        "stale-generation",
        destination("stale-generation", READY, VERIFIED, generation=2, observed=1),
        "InProgress",
    ),
    (
        "reconciling",
        destination(
            "reconciling",
            condition("Reconciling", "True", "Verifying"),
            condition("Verified", "Unknown", "Pending"),
        ),
        "InProgress",
    ),
    (
        "stalled",
        destination(
            "stalled",
            condition("Stalled", "True", "InvalidSpec"),
            condition("Verified", "False", "InvalidSpec"),
            condition("Ready", "False", "InvalidSpec"),
        ),
        "Failed",
    ),
    ("ready-true", destination("ready-true", READY, VERIFIED), "Current"),
    (
        # without Reconciling or Stalled, Ready=False reads as InProgress for ever
        "ready-false",
        destination(
            "ready-false",
            condition("Ready", "False", "AuthenticationFailed"),
            condition("Verified", "False", "AuthenticationFailed"),
        ),
        "InProgress",
    ),
    (
        "ready-unknown",
        destination("ready-unknown", condition("Ready", "Unknown", "Pending")),
        "InProgress",
    ),
    (
        # disabled or archived: Ready absent, so kstatus falls back to Current
        "verified-unknown-only",
        destination("verified-unknown-only", condition("Verified", "Unknown", "Archived")),
        "Current",
    ),
    (
        # CredentialsExpiring is not a kstatus condition: a working Destination stays Current
        "credentials-expiring",
        destination(
            "credentials-expiring",
            READY,
            VERIFIED,
            condition("CredentialsExpiring", "True", "CredentialsExpireSoon"),
        ),
        "Current",
    ),
    (
        "credentials-expire-later",
        destination(
            "credentials-expire-later",
            READY,
            VERIFIED,
            condition("CredentialsExpiring", "False", "CredentialsExpireLater"),
        ),
        "Current",
    ),
    (
        # expired: Stalled is what says Failed
        "credentials-expired",
        destination(
            "credentials-expired",
            condition("Ready", "False", "AuthenticationFailed"),
            condition("Verified", "False", "AuthenticationFailed"),
            condition("Stalled", "True", "AuthenticationFailed"),
            condition("CredentialsExpiring", "True", "CredentialsExpired"),
        ),
        "Failed",
    ),
    (
        # deletion comes first of all: even a Ready Destination is Terminating
        "deleting",
        destination("deleting", READY, VERIFIED, deleting=True),
        "Terminating",
    ),
    (
        "config-map",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "config-map", "namespace": "team-a"},
            "data": {"a": "b"},
        },
        "Current",
    ),
]


@pytest.mark.parametrize(("obj", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_kstatus_verdict(bin_dir: Path, obj: dict[str, Any], expected: str) -> None:
    assert compute([obj], bin_dir) == [expected]


def test_many_objects_keep_their_order_and_names(bin_dir: Path) -> None:
    got = results([c[1] for c in CASES], bin_dir)
    assert [(r.name, r.namespace, r.status) for r in got] == [
        (name, "team-a", expected) for name, _, expected in CASES
    ]


def test_messages_carry_the_condition_or_the_generations(bin_dir: Path) -> None:
    by_name = {r.name: r for r in results([c[1] for c in CASES], bin_dir)}
    assert by_name["stale-generation"].message == (
        "Destination generation is 2, but latest observed generation is 1"
    )
    assert by_name["stalled"].message == "Stalled is True"
    assert by_name["reconciling"].message == "Reconciling is True"
    assert by_name["ready-false"].message == "Ready is False"


BAD_GENERATION = destination("bad")
BAD_GENERATION["metadata"]["generation"] = "one"


def run_helper(bin_dir: Path, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary(bin_dir))], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_single_object_and_list_object_are_accepted(bin_dir: Path) -> None:
    single = run_helper(bin_dir, json.dumps(CASES[0][1]))
    assert single.returncode == 0, single.stderr
    assert [json.loads(line) for line in single.stdout.splitlines()] == [
        {
            "name": "no-status",
            "namespace": "team-a",
            "status": "Current",
            "message": "Resource is current",
        }
    ]
    items = [c[1] for c in CASES[:3]]
    listed = run_helper(bin_dir, json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["status"] for line in listed.stdout.splitlines()] == [
        c[2] for c in CASES[:3]
    ]


@pytest.mark.parametrize(
    ("stdin", "error"),
    [
        ("", "no input on stdin"),
        ("{not json", "stdin is not valid JSON"),
        ("42", "stdin holds a JSON number"),
        ("[1]", "item 0 is a JSON number, not an object"),
        ('[{"kind": "Destination"}]', "item 0 has no apiVersion"),
        ('{"a": 1} {"b": 2}', "stdin is not valid JSON"),
        (json.dumps(BAD_GENERATION), "item 0 (Destination team-a/bad): looking up metadata.gen"),
    ],
    ids=["empty", "not-json", "number", "item-not-object", "no-api-version", "two-values", "type"],
)
def test_bad_input_exits_nonzero_with_one_line(bin_dir: Path, stdin: str, error: str) -> None:
    done = run_helper(bin_dir, stdin)
    assert done.returncode == 1
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("kstatus: error: ")
    assert error in done.stderr


def test_bad_input_through_the_wrapper_is_a_kstatus_error(bin_dir: Path) -> None:
    with pytest.raises(KstatusError, match="item 0 has no kind"):
        compute([{"apiVersion": "v1"}], bin_dir)


def test_missing_binary_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(KstatusError, match=r"kstatus missing in .*hack/build-binaries\.sh"):
        compute([CASES[0][1]], tmp_path)
