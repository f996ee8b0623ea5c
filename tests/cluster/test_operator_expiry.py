"""Expiring credentials end to end: the operator, the API server, Azurite and the kstatus
library. A SAS token whose `se` is within the window (14 days, the default) verifies, and
the Destination shows `status.credentialsExpiry`, the EXPIRY column, `CredentialsExpiring=True`
with one Warning Event and the expiry metric, while kstatus still says Current. One beyond the
window is `CredentialsExpiring=False`, and turns True when it enters the window, without a
probe. An expired one fails before any request reaches
Azurite, Stalled (kstatus Failed), until the Secret gets a new SAS. Deleting a Destination
removes its expiry series.
"""

from __future__ import annotations

import datetime
import time
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import pytest
from azure.storage.blob import generate_container_sas
from dst import apply, condition, destination, events, get, secret, wait_for
from operator_fixtures import OPERATOR_NAMESPACE, OPERATOR_SA, OperatorProcess

import canaries
from azurite import DEFAULT_CONTAINERS, Azurite
from controlplane import free_port
from destination_operator.api.status import rfc3339
from harness import Cluster
from kstatus import compute

pytestmark = pytest.mark.cluster

EXPIRY_METRIC = "destination_operator_destination_credentials_expiry_timestamp_seconds"
DAY = datetime.timedelta(days=1)
MADE: list[str] = []  # every SAS this module made, for the log check at its end


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with Azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server


@pytest.fixture(scope="module")
def metrics_operator(
    cluster: Cluster, operator: OperatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[OperatorProcess, int]]:
    """The operator with its metrics served on a free loopback port and the default expiry
    window; the session's operator is stopped meanwhile (one operator at a time)."""
    folder = tmp_path_factory.mktemp("expiry-operator")
    kubeconfig = cluster.token_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_SA, out_dir=folder)
    port = free_port()
    env = {
        "DESTINATION_OPERATOR_METRICS_PORT": str(port),
        "DESTINATION_OPERATOR_DEFAULT_INTERVAL_SECONDS": "3600",
    }
    operator.stop()
    process = OperatorProcess(kubeconfig, folder / "operator.log", env=env)
    process.start()
    try:
        yield process, port
    finally:
        process.stop()
        operator.start()


def sas(azurite: Azurite, expires: datetime.datetime) -> str:
    """A container SAS for Azurite's account, valid from two hours ago until `expires`."""
    token: str = generate_container_sas(
        azurite.account,
        DEFAULT_CONTAINERS[0],
        account_key=azurite.key,
        permission="cwd",
        start=datetime.datetime.now(datetime.UTC) - 2 * datetime.timedelta(hours=1),
        expiry=expires,
    )
    MADE.append(token)
    return token


def azure_destination(name: str, azurite: Azurite, *, secret_name: str) -> dict[str, Any]:
    return destination(
        name,
        {
            "type": "AzureBlobStorage",
            "environment": "Development",
            "azureBlobStorage": {
                "storageAccountName": azurite.account,
                "containerName": DEFAULT_CONTAINERS[0],
                "endpoint": azurite.endpoint,
            },
            "pathPrefix": f"{name}/",
            "credentials": {"secretRef": {"name": secret_name}},
            "verification": {"interval": "1h", "timeout": "5s"},
        },
    )


def metric(port: int, namespace: str, name: str) -> float | None:
    """The expiry series of one Destination, as the operator serves it (None: absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    labels = f'name="{name}",namespace="{namespace}"'
    for line in text.splitlines():
        if line.startswith(EXPIRY_METRIC + "{") and labels in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def eventually(check: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


def shown_text(cluster: Cluster, namespace: str, name: str) -> str:
    """Everything a user can read about the Destination: its status and its Events."""
    return repr(get(cluster, namespace, name).get("status")) + repr(
        events(cluster, namespace, name)
    )


def test_a_sas_within_the_window_is_expiring_and_still_current(
    cluster: Cluster,
    namespace: str,
    azurite: Azurite,
    metrics_operator: tuple[OperatorProcess, int],
) -> None:
    _, port = metrics_operator
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    soon, later = now + 3 * DAY, now + 60 * DAY
    soon_sas, later_sas = sas(azurite, soon), sas(azurite, later)
    apply(
        cluster,
        namespace,
        secret("soon", {"sasToken": soon_sas}),
        secret("later", {"sasToken": later_sas}),
        azure_destination("soon", azurite, secret_name="soon"),
        azure_destination("later", azurite, secret_name="later"),
    )

    body = wait_for(cluster, namespace, "soon", "Ready", "True", timeout=60)
    expiring = condition(body, "CredentialsExpiring")
    assert (expiring["status"], expiring["reason"]) == ("True", "CredentialsExpireSoon")
    said = f"the SAS token in the Secret's sasToken expires at {rfc3339(soon)}, within 14 days"
    assert expiring["message"] == said
    assert body["status"]["credentialsExpiry"] == rfc3339(soon)
    assert compute([body], cluster.bin_dir) == ["Current"]  # it works: kstatus is not moved

    warnings = eventually(
        lambda: [
            e for e in events(cluster, namespace, "soon") if e["reason"] == "CredentialsExpiring"
        ]
    )
    assert [(e["type"], e["message"]) for e in warnings] == [("Warning", said)]
    assert eventually(lambda: metric(port, namespace, "soon")) == soon.timestamp()

    wide = cluster.kubectl("get", "dst", "-n", namespace, "soon", "-o", "wide").stdout
    header, row = wide.splitlines()[:2]
    assert "EXPIRY" in header.split()
    assert rfc3339(soon) in row.split()

    body = wait_for(cluster, namespace, "later", "Ready", "True", timeout=60)
    expiring = condition(body, "CredentialsExpiring")
    assert (expiring["status"], expiring["reason"]) == ("False", "CredentialsExpireLater")
    assert body["status"]["credentialsExpiry"] == rfc3339(later)
    assert compute([body], cluster.bin_dir) == ["Current"]
    assert not [e for e in events(cluster, namespace, "later") if e["type"] == "Warning"]
    assert eventually(lambda: metric(port, namespace, "later")) == later.timestamp()

    signatures = [part for part in (soon_sas + "&" + later_sas).split("&") if part[:4] == "sig="]
    for name in ("soon", "later"):
        text = shown_text(cluster, namespace, name)
        assert not any(s[4:] in text for s in signatures), "a SAS signature was shown"

    cluster.kubectl("delete", "dst", "-n", namespace, "soon", "--wait=true")
    assert eventually(lambda: metric(port, namespace, "soon") is None)
    assert metric(port, namespace, "later") == later.timestamp()


def test_an_expired_sas_fails_without_a_request_until_the_secret_changes(
    cluster: Cluster,
    namespace: str,
    azurite: Azurite,
    metrics_operator: tuple[OperatorProcess, int],
) -> None:
    _, port = metrics_operator
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    ended = now - datetime.timedelta(hours=1)
    apply(
        cluster,
        namespace,
        secret("old", {"sasToken": sas(azurite, ended)}),
        azure_destination("stale", azurite, secret_name="old"),
    )
    body = wait_for(cluster, namespace, "stale", "Stalled", "True", reason="AuthenticationFailed")
    verified = condition(body, "Verified")
    assert (verified["status"], verified["reason"]) == ("False", "AuthenticationFailed")
    assert f"expired at {rfc3339(ended)}" in verified["message"]
    expiring = condition(body, "CredentialsExpiring")
    assert (expiring["status"], expiring["reason"]) == ("True", "CredentialsExpired")
    assert condition(body, "Reconciling") == {}
    assert body["status"].get("nextVerificationTime") is None
    assert body["status"].get("lastProbe") is None  # no probe was attempted
    assert compute([body], cluster.bin_dir) == ["Failed"]
    assert not [line for line in azurite.requests() if "/stale/" in line]  # nothing was sent
    assert eventually(lambda: metric(port, namespace, "stale")) == ended.timestamp()

    fresh = now + 30 * DAY
    apply(cluster, namespace, secret("old", {"sasToken": sas(azurite, fresh)}))
    body = wait_for(cluster, namespace, "stale", "Ready", "True", timeout=60)
    assert body["status"]["credentialsExpiry"] == rfc3339(fresh)
    assert condition(body, "Stalled") == {}
    expiring = condition(body, "CredentialsExpiring")
    assert expiring["status"] == "False"
    assert [line for line in azurite.requests() if "/stale/" in line]  # verified for real
    assert eventually(lambda: metric(port, namespace, "stale") == fresh.timestamp())


def test_entering_the_window_is_written_without_a_probe(
    cluster: Cluster,
    namespace: str,
    azurite: Azurite,
    metrics_operator: tuple[OperatorProcess, int],
) -> None:
    """A SAS that enters the 14-day window 20 s after its verification: the operator wakes
    then and writes CredentialsExpiring=True with its Warning Event, with no new probe."""
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    expires = now + 14 * DAY + datetime.timedelta(seconds=20)
    apply(
        cluster,
        namespace,
        secret("edge", {"sasToken": sas(azurite, expires)}),
        azure_destination("edge", azurite, secret_name="edge"),
    )
    body = wait_for(cluster, namespace, "edge", "Ready", "True", timeout=60)
    if condition(body, "CredentialsExpiring")["status"] != "False":
        pytest.fail(f"the verification took over 20 s: {body['status']}")
    probed = body["status"]["lastProbe"]["time"]
    requests = [line for line in azurite.requests() if "/edge/" in line]

    body = wait_for(cluster, namespace, "edge", "CredentialsExpiring", "True", timeout=60)
    assert condition(body, "CredentialsExpiring")["reason"] == "CredentialsExpireSoon"
    assert body["status"]["lastProbe"]["time"] == probed  # no new verification
    assert [line for line in azurite.requests() if "/edge/" in line] == requests
    warnings = eventually(
        lambda: [e for e in events(cluster, namespace, "edge") if e["type"] == "Warning"]
    )
    assert [e["reason"] for e in warnings] == ["CredentialsExpiring"]
    assert compute([body], cluster.bin_dir) == ["Current"]


def test_the_operator_log_holds_no_sas_nor_its_signature(
    metrics_operator: tuple[OperatorProcess, int],
) -> None:
    """Last in this module: the log of its operator, at DEBUG, holds no SAS (in any form a
    log may write it) and no signature out of one."""
    process, _ = metrics_operator
    text = process.text()
    assert text, "the operator logged nothing"
    assert MADE, "no SAS was made: run the whole module"
    assert canaries.found_in(text) == []
    signatures = [p[4:] for token in MADE for p in token.split("&") if p.startswith("sig=")]
    assert len(signatures) == len(MADE)
    assert not [s for s in signatures if s in text or unquote(s) in text]
