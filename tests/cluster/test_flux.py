"""GitOps with a real Flux: docs/install.md's GitRepository and Kustomization, as they are.

Flux's source-controller and kustomize-controller (built from the Go module proxy) run
beside the test control plane and the session's operator. They clone a repository of
Destinations from a smart-HTTP Git server on loopback (git's own http-backend) and apply
it with `wait: true`, so the Kustomization's Ready is Flux's health check (kstatus) of
the Destinations: Ready once each is verified, failed when one is Stalled, healed by a
commit.

The page's manifests are applied with one substitution, which the page states: the
GitRepository's `url` is the loopback Git server, and every `interval` is 5s. Their
namespaces, `flux-system` and `team-a`, are made here and removed afterwards.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dst import apply, condition, get, s3_destination, s3_secret, wait_for
from flux import documented_flux_objects, flux_controllers
from operator_fixtures import OperatorProcess

import canaries
from gitserver import GitServer
from harness import Cluster
from s3server import S3Server
from tcprelay import TcpRelay

pytestmark = pytest.mark.cluster

TEAM = "team-a"
FLUX = "flux-system"
KUSTOMIZATION = "team-a-destinations"
PATH = "destinations/team-a/destinations.yaml"
KUSTOMIZATIONS = "kustomizations.kustomize.toolkit.fluxcd.io"
FLUX_KINDS = (KUSTOMIZATIONS, "gitrepositories.source.toolkit.fluxcd.io")  # in deletion order


class Platform:
    """The platform repository behind Flux, the Kustomization Flux reconciles from it, and
    a relay to the S3 server that a test can take down."""

    def __init__(self, cluster: Cluster, git: GitServer, relay: TcpRelay, logs: list[Path]):
        self.cluster = cluster
        self.git = git
        self.relay = relay
        self.logs = logs

    def publish(self, message: str, *destinations: dict[str, Any]) -> str:
        """Commit these Destinations as the whole of team-a's folder; the revision Flux
        names for the commit."""
        sha = self.git.commit({PATH: yaml.safe_dump_all(list(destinations))}, message)
        return f"main@sha1:{sha}"

    def kustomization(self) -> dict[str, Any]:
        out = self.cluster.kubectl(
            "get", "-n", FLUX, KUSTOMIZATIONS, KUSTOMIZATION, "-o", "json"
        ).stdout
        body: dict[str, Any] = json.loads(out)
        return body

    def wait_until(
        self, status: str, revision: str, *, kind: str = "Ready", message: str = ""
    ) -> dict[str, Any]:
        """Until the Kustomization's condition `kind` is `status` for `revision` (attempted,
        and for True also applied), its message holding `message`."""
        deadline = time.monotonic() + 90
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = self.kustomization()
            seen = body.get("status") or {}
            found = condition(body, kind)
            applied = status != "True" or seen.get("lastAppliedRevision") == revision
            if (
                found.get("status") == status
                and message in found.get("message", "")
                and seen.get("lastAttemptedRevision") == revision
                and applied
            ):
                return body
            time.sleep(0.5)
        tail = "".join(log.read_text(errors="replace")[-2000:] for log in self.logs)
        raise AssertionError(
            f"Kustomization never {kind}={status} for {revision}; last status: "
            f"{json.dumps(body.get('status'), indent=1)}\ncontrollers' logs:\n{tail}"
        )


@pytest.fixture(scope="module")
def platform(
    cluster: Cluster,
    destination_crd: str,
    operator: OperatorProcess,
    s3: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Platform]:
    folder = tmp_path_factory.mktemp("flux")
    for name in (FLUX, TEAM):
        cluster.kubectl("create", "namespace", name)
    # The keys come from outside Git, as External Secrets or a sealed Secret would bring them.
    apply(cluster, TEAM, s3_secret(s3))
    relay = TcpRelay("127.0.0.1", s3.port)
    try:
        with GitServer(folder / "git") as git, flux_controllers(cluster, folder) as logs:
            platform = Platform(cluster, git, relay, logs)
            git.commit({"README.md": "The platform's manifests.\n"}, "An empty platform")
            manifests = documented_flux_objects(git.url, "5s")
            cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(manifests))
            try:
                yield platform
            finally:
                # a health check still waiting on the bucket holds the deletion back
                relay.restore()
                # prune: deleting the Kustomization deletes the Destinations it applied
                pruned = cluster.kubectl(
                    "delete",
                    "-n",
                    FLUX,
                    ",".join(FLUX_KINDS),
                    "--all",
                    "--timeout=90s",
                    check=False,
                )
            # no credential in the team's statuses and events, nor in what Flux logged
            seen = cluster.kubectl("get", "dst,events", "-n", TEAM, "-o", "json").stdout
            seen += "".join(log.read_text(errors="replace") for log in logs)
            assert canaries.found_in(seen) == []
            assert pruned.returncode == 0, pruned.stderr
            assert cluster.kubectl("get", "dst", "-n", TEAM, "-o", "name").stdout == ""
    finally:
        relay.close()
        # with the controllers gone, their finalizers would hold the namespace for ever
        for kind in FLUX_KINDS:
            left = cluster.kubectl("get", kind, "-n", FLUX, "-o", "name", check=False)
            for name in left.stdout.split():
                unfinalized = '{"metadata": {"finalizers": null}}'
                cluster.kubectl("patch", "-n", FLUX, name, "--type=merge", "-p", unfinalized)
        for name in (TEAM, FLUX):
            cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
        for name in (TEAM, FLUX):
            cluster.wait_namespace_gone(name)


def since(stamp: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_the_kustomization_is_ready_only_once_every_destination_is_verified(
    cluster: Cluster, s3: S3Server, platform: Platform
) -> None:
    platform.relay.refuse()  # the bucket behind "backups" cannot be reached yet
    revision = platform.publish(
        "Team A stores logs and backups",
        s3_destination("logs", s3, secret="s3"),
        s3_destination(
            "backups", s3, secret="s3", endpoint=f"http://127.0.0.1:{platform.relay.port}"
        ),
        s3_destination("old-logs", s3, secret="s3", archived=True),  # no Ready: never holds it
    )
    body = platform.wait_until("Unknown", revision, kind="Healthy", message="Running health checks")
    assert condition(body, "Ready")["status"] == "Unknown"
    wait_for(cluster, TEAM, "logs", "Ready", "True", timeout=30)
    wait_for(cluster, TEAM, "backups", "Reconciling", "True", timeout=30)
    time.sleep(6)  # past Flux's 5 s poll of the Destinations: still waiting, not Ready
    assert condition(platform.kustomization(), "Ready")["status"] == "Unknown"

    platform.relay.restore()
    body = platform.wait_until("True", revision)
    ready_at = since(condition(body, "Ready")["lastTransitionTime"])
    for name in ("logs", "backups"):
        verified = condition(get(cluster, TEAM, name), "Ready")
        assert verified["status"] == "True", verified
        assert since(verified["lastTransitionTime"]) <= ready_at, (name, verified, ready_at)


def test_a_stalled_destination_fails_the_kustomization_and_a_commit_heals_it(
    cluster: Cluster, s3: S3Server, platform: Platform
) -> None:
    broken = platform.publish(
        "Team A adds audit, naming a Secret that is not there",
        s3_destination("logs", s3, secret="s3"),
        s3_destination("audit", s3, secret="audit-keys"),
    )
    body = platform.wait_until("False", broken)
    ready = condition(body, "Ready")
    assert ready["reason"] == "HealthCheckFailed"
    # Flux names the Destination and its kstatus verdict; the reason is the Destination's
    assert "failed early due to stalled resources" in ready["message"]
    assert f"Destination/{TEAM}/audit status: 'Failed'" in ready["message"]
    assert "logs" not in ready["message"]
    stalled = condition(get(cluster, TEAM, "audit"), "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "SecretNotFound")

    fixed = platform.publish(
        "Team A's audit uses the team's S3 keys",
        s3_destination("logs", s3, secret="s3"),
        s3_destination("audit", s3, secret="s3"),
    )
    platform.wait_until("True", fixed)
    assert condition(get(cluster, TEAM, "audit"), "Ready")["status"] == "True"
