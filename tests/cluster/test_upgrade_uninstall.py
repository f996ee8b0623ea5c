"""Upgrading and uninstalling, as docs/upgrade.md describes them, against a real API server.

Deleting the CRD deletes every Destination, so these tests never touch the session's control
plane: the module starts a second one from the same binaries. No operator runs on it, as after
`helm uninstall` or between stopping an old operator and starting a new one; statuses are
written through the status subresource, as the operator writes them.

- `helm upgrade` (docs/upgrade.md's command) upgrades the chart's CRD in place, and stored
  Destinations keep their spec (with the first CRD's defaults) and their status; one whose
  interval the new rule refuses can still be edited elsewhere, and `lint` on `kubectl get -o
  json` finds it; `helm uninstall` keeps the CRD (`crds.keep`) and every Destination;
- with `crds.install=false`, Helm never touches a CRD applied by hand, and docs/upgrade.md's
  command for that case upgrades it; with `crds.keep=false`, `helm uninstall` deletes it;
- a CRD installed from a chart's `crds/` folder (the development snapshots') is handed to
  the release by docs/upgrade.md's two commands, and the upgrade then upgrades it;
- deleting the CRD deletes every Destination and no Secret, and waits for a Destination that
  still carries the first releases' finalizer until that finalizer is removed by hand.
"""

from __future__ import annotations

import copy
import json
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import chart
from controlplane import ControlPlane, ControlPlaneError
from destination_operator.engine.engine import LEGACY_FINALIZER
from harness import Cluster

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / chart.CRD_FILE
CRD_NAME = "destinations.destinations.io"

# What the first CRD stored in every Destination created without these fields.
FIRST_CRD_DEFAULTS = {"interval": "1h", "timeout": "30s"}

VERIFIED_STATUS = {
    "observedGeneration": 1,
    "target": "s3://example-reports",
    "lastVerifiedTime": "2026-11-20T10:00:00Z",
    "nextVerificationTime": "2026-11-20T11:00:00Z",
    "credentialsFingerprint": "0123456789abcdef",
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Ready",
            "message": "verified",
            "lastTransitionTime": "2026-11-20T10:00:00Z",
            "observedGeneration": 1,
        },
        {
            "type": "Verified",
            "status": "True",
            "reason": "ProbeSucceeded",
            "message": "probe object written and deleted",
            "lastTransitionTime": "2026-11-20T10:00:00Z",
            "observedGeneration": 1,
        },
    ],
}


@pytest.fixture(scope="module")
def plane(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A control plane of this module's own, from the session's binaries."""
    own = ControlPlane(tmp_path_factory.mktemp("upgrade-plane"), cluster.bin_dir, attached=True)
    try:
        own.start()
    except ControlPlaneError as err:
        own.stop()
        pytest.fail(f"a second control plane did not start: {err}")
    try:
        yield Cluster(own)
    finally:
        own.stop()


def committed_crd() -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return crd


def verification_schema(crd: dict[str, Any]) -> dict[str, Any]:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    found: dict[str, Any] = schema["properties"]["spec"]["properties"]["verification"]
    properties: dict[str, Any] = found["properties"]
    return properties


def first_release_crd() -> dict[str, Any]:
    """The committed CRD with what the first CRD did differently for `verification` put back:
    defaults for interval and timeout, and any interval of 0s or more (now 0s or at least 1m).
    The rest of the first CRD does not matter to what these tests store."""
    crd = copy.deepcopy(committed_crd())
    fields = verification_schema(crd)
    for field, default in FIRST_CRD_DEFAULTS.items():
        fields[field]["default"] = default
    (rule,) = fields["interval"]["x-kubernetes-validations"]
    rule["rule"] = rule["rule"].split(" && ")[0] + " && duration(self) >= duration('0s')"
    return crd


def cluster_crd(plane: Cluster) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(plane.kubectl("get", "crd", CRD_NAME, "-o", "json").stdout)
    return found


def destination(name: str, **verification: str) -> dict[str, Any]:
    return {
        "apiVersion": "destinations.io/v1alpha1",
        "kind": "Destination",
        "metadata": {"name": name},
        "spec": {
            "type": "AmazonS3",
            "amazonS3": {"bucket": "example-reports", "region": "eu-west-1"},
            "credentials": {"secretRef": {"name": "reports-credentials"}},
            "verification": dict(verification),
        },
    }


def credentials() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "reports-credentials"},
        "stringData": {"accessKeyId": "AKIDEXAMPLE", "secretAccessKey": "not-a-real-key"},
    }


def create(plane: Cluster, namespace: str, *objects: dict[str, Any]) -> None:
    plane.kubectl("create", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(list(objects)))


def write_status(plane: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """Write a verified status through the status subresource, as the operator does."""
    out = plane.kubectl(
        "patch",
        "dst",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": VERIFIED_STATUS}),
        "-o",
        "json",
    ).stdout
    stored: dict[str, Any] = json.loads(out)
    assert stored["status"] == VERIFIED_STATUS
    return stored


def get_dst(plane: Cluster, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        plane.kubectl("get", "dst", name, "-n", namespace, "-o", "json").stdout
    )
    return found


def wait(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def first_chart(folder: Path) -> Path:
    """The chart as it was with the first CRD: its CRD template made from that CRD."""
    first = folder / "first-chart"
    shutil.copytree(chart.CHART, first)
    template = chart.crd_template(yaml.safe_dump(first_release_crd()))
    (first / chart.CRD_TEMPLATE.relative_to(chart.CHART)).write_text(template)
    return first


def upgrade_command(release: str, namespace: str) -> list[str]:
    """docs/upgrade.md's `helm upgrade`, for the chart of this checkout."""
    text = (ROOT / "docs" / "upgrade.md").read_text()
    (block,) = [b for b in text.split("```sh\n")[1:] if b.startswith("helm upgrade")]
    words = block.split("```", 1)[0].replace("\\\n", " ").split()
    assert words[:5] == [
        "helm", "upgrade", "destination-operator", "charts/destination-operator",
        "-n",
    ], words  # fmt: skip
    return [words[1], release, str(chart.CHART), "-n", namespace, *words[6:]]


def remove_crd(plane: Cluster) -> None:
    plane.kubectl("delete", "crd", CRD_NAME, "--ignore-not-found", "--wait=false")
    wait(
        "the CRD to go",
        lambda: plane.kubectl("get", "crd", CRD_NAME, check=False).returncode != 0,
    )


def test_helm_upgrade_upgrades_the_crd_and_uninstall_keeps_it_and_every_destination(
    plane: Cluster, tmp_path: Path
) -> None:
    # A release installed from a chart whose CRD is the first one.
    release, namespace, team = "upgrade", "upgrade-operator", "upgrade-team"
    plane.helm(
        "install",
        release,
        str(first_chart(tmp_path)),
        "-n",
        namespace,
        "--create-namespace",
        "--set",
        "replicas=0",
    )
    plane.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    installed = cluster_crd(plane)
    assert installed["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert installed["metadata"]["annotations"]["meta.helm.sh/release-name"] == release
    plane.kubectl("create", "namespace", team)
    create(
        plane,
        team,
        credentials(),
        destination("old"),
        destination("pinned", interval="5m"),
        destination("often", interval="30s"),  # allowed by the first CRD only
    )
    old = write_status(plane, team, "old")
    assert old["spec"]["verification"] == {"mode": "WriteDelete", **FIRST_CRD_DEFAULTS}

    # helm upgrade to this chart, as docs/upgrade.md says: the CRD is upgraded in place
    plane.helm(*upgrade_command(release, namespace))
    plane.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    upgraded = cluster_crd(plane)
    assert upgraded["spec"]["versions"] == committed_crd()["spec"]["versions"]
    assert upgraded["metadata"]["uid"] == installed["metadata"]["uid"]
    # --reset-then-reuse-values: the install's value stays, the new chart's defaults apply
    deployment = json.loads(
        plane.kubectl("get", "deployment", "-n", namespace, "-o", "json").stdout
    )["items"][0]
    assert deployment["spec"]["replicas"] == 0

    # stored objects keep what the first CRD defaulted, their status and their identity
    after = get_dst(plane, team, "old")
    assert after["metadata"]["uid"] == old["metadata"]["uid"]
    assert after["spec"] == old["spec"]
    assert after["status"] == VERIFIED_STATUS
    assert get_dst(plane, team, "pinned")["spec"]["verification"] == {
        "mode": "WriteDelete",
        "interval": "5m",
        "timeout": FIRST_CRD_DEFAULTS["timeout"],
    }
    # An interval the new rule refuses stays stored; other fields can still be edited (the
    # API server ratchets: it does not re-check an unchanged value), the interval itself only
    # to a value the rule accepts.
    assert get_dst(plane, team, "often")["spec"]["verification"]["interval"] == "30s"
    # `lint` on what the cluster holds finds it, and only it
    stored = plane.kubectl("get", "dst", "-A", "-o", "json").stdout
    linted = subprocess.run(
        [str(Path(sys.executable).parent / "destination-operator"), "lint", "-"],
        input=stored,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    problems = linted.stdout.splitlines()
    assert linted.returncode == 1, linted
    assert len(problems) == 1 and "spec.verification.interval" in problems[0], problems
    plane.kubectl(
        "patch", "dst", "often", "-n", team, "--type=merge",
        "-p", '{"spec": {"displayName": "edited after the upgrade"}}',
    )  # fmt: skip
    refused = plane.kubectl(
        "patch", "dst", "often", "-n", team, "--type=merge",
        "-p", '{"spec": {"verification": {"interval": "45s"}}}',
        check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "at least 1m" in refused.stderr, refused.stderr
    plane.kubectl(
        "patch", "dst", "often", "-n", team, "--type=merge",
        "-p", '{"spec": {"verification": {"interval": "1m"}}}',
    )  # fmt: skip
    # a Destination created now gets no interval or timeout: the operator's settings apply
    create(plane, team, destination("new"))
    assert get_dst(plane, team, "new")["spec"]["verification"] == {"mode": "WriteDelete"}

    # uninstall: the CRD (crds.keep), the Destinations and their status stay
    done = plane.helm("uninstall", release, "-n", namespace, "--wait")
    assert "kept due to the resource policy" in done.stdout + done.stderr, done
    assert cluster_crd(plane)["metadata"]["uid"] == installed["metadata"]["uid"]
    assert get_dst(plane, team, "old")["status"] == VERIFIED_STATUS
    assert get_dst(plane, team, "old")["metadata"]["uid"] == old["metadata"]["uid"]
    # installed again under the same name, the release takes the kept CRD back
    plane.helm(
        "install", release, str(chart.CHART), "-n", namespace, "--set", "replicas=0"
    )  # fmt: skip
    assert cluster_crd(plane)["metadata"]["uid"] == installed["metadata"]["uid"]
    plane.helm("uninstall", release, "-n", namespace, "--wait")


def test_without_crds_install_helm_leaves_the_crd_to_you(plane: Cluster, tmp_path: Path) -> None:
    """crds.install=false: the CRD applied by hand is never changed by the install, the
    upgrade or the uninstall; docs/upgrade.md's command for that case upgrades it."""
    remove_crd(plane)
    plane.kubectl("create", "namespace", "by-hand-team")
    first = yaml.safe_dump(first_release_crd())
    plane.kubectl("apply", "--server-side", "-f", "-", input=first)
    plane.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    create(plane, "by-hand-team", credentials(), destination("kept"))
    applied = cluster_crd(plane)
    release, namespace = "by-hand", "by-hand-operator"
    plane.helm(
        "install", release, str(chart.CHART), "-n", namespace, "--create-namespace",
        "--set", "replicas=0,crds.install=false",
    )  # fmt: skip
    plane.helm(*upgrade_command(release, namespace))
    assert (
        cluster_crd(plane)["metadata"]["resourceVersion"] == applied["metadata"]["resourceVersion"]
    )

    # docs/upgrade.md: the CRD of the chart, applied by hand
    text = (ROOT / "docs" / "upgrade.md").read_text()
    (command,) = [
        line.strip() for line in text.splitlines() if "--show-only templates/crds.yaml" in line
    ]
    template, apply_part = command.split(" | ")
    words = template.split()
    assert words[:4] == ["helm", "template", "destination-operator", "charts/destination-operator"]
    crd = plane.helm("template", release, str(chart.CHART), *words[4:]).stdout
    assert apply_part.split()[:3] == ["kubectl", "apply", "--server-side"], apply_part
    plane.kubectl(*apply_part.split()[1:], input=crd)
    plane.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    assert cluster_crd(plane)["spec"]["versions"] == committed_crd()["spec"]["versions"]

    plane.helm("uninstall", release, "-n", namespace, "--wait")
    assert cluster_crd(plane)["metadata"]["uid"] == applied["metadata"]["uid"]
    assert get_dst(plane, "by-hand-team", "kept")["spec"]["verification"]["interval"] == "1h"


def test_with_crds_keep_false_uninstall_deletes_the_crd(plane: Cluster) -> None:
    remove_crd(plane)
    release, namespace = "not-kept", "not-kept-operator"
    plane.helm(
        "install", release, str(chart.CHART), "-n", namespace, "--create-namespace",
        "--set", "replicas=0,crds.keep=false",
    )  # fmt: skip
    plane.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    assert "helm.sh/resource-policy" not in cluster_crd(plane)["metadata"].get("annotations", {})
    plane.helm("uninstall", release, "-n", namespace, "--wait")
    wait(
        "the CRD to go",
        lambda: plane.kubectl("get", "crd", CRD_NAME, check=False).returncode != 0,
    )


def test_a_crd_from_the_charts_crds_folder_is_handed_to_the_release(
    plane: Cluster, tmp_path: Path
) -> None:
    """The development snapshots' chart had the first CRD in crds/, which Helm installs
    outside the release: the upgrade is refused until docs/upgrade.md's two commands (run as
    written, so with its release name and namespace) hand the CRD over."""
    remove_crd(plane)
    legacy = first_chart(tmp_path)
    (legacy / chart.CRD_TEMPLATE.relative_to(chart.CHART)).unlink()
    (legacy / "crds").mkdir()
    (legacy / "crds" / chart.CRD_FILE).write_text(yaml.safe_dump(first_release_crd()))
    release, namespace = "destination-operator", "destination-operator-system"
    plane.helm(
        "install", release, str(legacy), "-n", namespace, "--create-namespace",
        "--set", "replicas=0",
    )  # fmt: skip
    plane.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    installed = cluster_crd(plane)
    refused = plane.helm(*upgrade_command(release, namespace), check=False)
    assert refused.returncode != 0 and "invalid ownership metadata" in refused.stderr, refused

    text = (ROOT / "docs" / "upgrade.md").read_text()
    section = text.split("### From a chart whose CRD was in `crds/`", 1)[1]
    commands = section.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert [line.split()[:3] for line in commands] == [
        ["kubectl", "label", "crd"],
        ["kubectl", "annotate", "crd"],
    ]
    for line in commands:
        plane.kubectl(*shlex.split(line)[1:])
    plane.helm(*upgrade_command(release, namespace))
    plane.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    upgraded = cluster_crd(plane)
    assert upgraded["metadata"]["uid"] == installed["metadata"]["uid"]
    assert upgraded["spec"]["versions"] == committed_crd()["spec"]["versions"]
    assert upgraded["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    plane.helm("uninstall", release, "-n", namespace, "--wait")
    assert cluster_crd(plane)["metadata"]["uid"] == installed["metadata"]["uid"]


def test_deleting_the_crd_deletes_every_destination_and_no_secret(plane: Cluster) -> None:
    remove_crd(plane)
    plane.apply_crd(CRD_PATH)
    teams = ("crd-delete-a", "crd-delete-b")
    secrets: dict[str, str] = {}
    for team in teams:
        plane.kubectl("create", "namespace", team)
        create(plane, team, credentials(), destination("reports"), destination("archive"))
        write_status(plane, team, "reports")
        secret = json.loads(
            plane.kubectl("get", "secret", "reports-credentials", "-n", team, "-o", "json").stdout
        )
        secrets[team] = secret["metadata"]["uid"]
    # A Destination of the first releases, whose finalizer no operator will remove now.
    legacy = destination("legacy") | {
        "metadata": {"name": "legacy", "finalizers": [LEGACY_FINALIZER]}
    }
    create(plane, teams[0], legacy)

    plane.kubectl("delete", "crd", CRD_NAME, "--wait=false")
    # Every Destination without a finalizer goes; the CRD waits for the one with it.
    wait(
        "the Destinations without a finalizer to go",
        lambda: (
            [
                item["metadata"]["name"]
                for item in json.loads(plane.kubectl("get", "dst", "-A", "-o", "json").stdout)[
                    "items"
                ]
            ]
            == ["legacy"]
        ),
    )
    time.sleep(2)
    held = cluster_crd(plane)
    assert held["metadata"].get("deletionTimestamp"), "the CRD was not being deleted"
    assert get_dst(plane, teams[0], "legacy")["metadata"].get("deletionTimestamp")

    # The finalizer removed by hand (the command docs/upgrade.md gives): the CRD goes.
    plane.kubectl(
        "patch",
        "dst",
        "legacy",
        "-n",
        teams[0],
        "--type=json",
        "-p",
        '[{"op": "remove", "path": "/metadata/finalizers"}]',
    )
    wait(
        "the CRD to go",
        lambda: plane.kubectl("get", "crd", CRD_NAME, check=False).returncode != 0,
    )
    for team, uid in secrets.items():
        secret = json.loads(
            plane.kubectl("get", "secret", "reports-credentials", "-n", team, "-o", "json").stdout
        )
        assert secret["metadata"]["uid"] == uid
    # The same CRD applied again brings none of them back.
    plane.apply_crd(CRD_PATH)
    assert json.loads(plane.kubectl("get", "dst", "-A", "-o", "json").stdout)["items"] == []
