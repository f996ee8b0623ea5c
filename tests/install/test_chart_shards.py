"""The chart's `shards`, rendered by helm (no cluster): one Deployment per shard, alike but
for its name, its pods' shard label, its selector (joined to `destinationSelector`) and
its Lease; the Service selects every shard's pods; a shard's Deployment never selects
another's pods; wrong shards are refused with a clear message.

That the shards split the Destinations between them is tests/cluster/test_shards.py."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

import chart
from destination_operator.selectors import label_selector

pytestmark = pytest.mark.install

SHARD = "destinations.io/shard"
SELECTOR = "DESTINATION_OPERATOR_DESTINATION_SELECTOR"
LEASE = "DESTINATION_OPERATOR_LEADER_ELECTION_ID"
SMALL = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
SHARDS = {
    "destinationSelector": "tier!=dev",
    "shards": [
        {"name": "a", "destinationSelector": f"{SHARD}=a", "replicas": 0, "resources": SMALL},
        {"name": "rest", "destinationSelector": f"{SHARD} notin (a)"},
    ],
}


@pytest.fixture(scope="module")
def helm() -> Path:
    return chart.helm_binary()


def render(helm: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(chart.helm_template(helm, values=values)) if doc]


def deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}


def env(deployment: dict[str, Any]) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item["value"] for item in container["env"]}


def selects(deployment: dict[str, Any], pod: dict[str, Any]) -> bool:
    wanted = deployment["spec"]["selector"]["matchLabels"].items()
    return wanted <= pod["spec"]["template"]["metadata"]["labels"].items()


def unsharded(deployment: dict[str, Any]) -> dict[str, Any]:
    """The Deployment without what makes it a shard's: name, shard labels, replicas,
    resources, selector and Lease."""
    found = copy.deepcopy(deployment)
    found["metadata"]["name"] = "-"
    for labels in (
        found["metadata"]["labels"],
        found["spec"]["selector"]["matchLabels"],
        found["spec"]["template"]["metadata"]["labels"],
    ):
        labels.pop(SHARD, None)
    found["spec"].pop("replicas")
    container = found["spec"]["template"]["spec"]["containers"][0]
    container.pop("resources")
    container["env"] = [item for item in container["env"] if item["name"] not in (SELECTOR, LEASE)]
    return found


def test_each_shard_renders_a_deployment_alike_but_for_its_shard(helm: Path) -> None:
    docs = render(helm, SHARDS)
    made = deployments(docs)
    assert sorted(made) == ["destination-operator-a", "destination-operator-rest"]
    a, rest = made["destination-operator-a"], made["destination-operator-rest"]

    for name, deployment in (("a", a), ("rest", rest)):
        assert deployment["metadata"]["labels"][SHARD] == name
        assert deployment["spec"]["selector"]["matchLabels"][SHARD] == name
        assert deployment["spec"]["template"]["metadata"]["labels"][SHARD] == name
        assert selects(deployment, deployment)
    assert not selects(a, rest) and not selects(rest, a)  # no ReplicaSet adopts another's pod
    service = next(d for d in docs if d["kind"] == "Service")
    for deployment in (a, rest):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()  # metrics of every shard

    # the release's selector and the shard's, both required; each a selector the operator takes
    assert env(a)[SELECTOR] == f"tier!=dev,{SHARD}=a"
    assert env(rest)[SELECTOR] == f"tier!=dev,{SHARD} notin (a)"
    for deployment in (a, rest):
        assert label_selector(env(deployment)[SELECTOR]) == env(deployment)[SELECTOR]
    # a Lease each: <leader election's Lease name>-<shard>, the release's full name here
    assert env(a)[LEASE] == "destination-operator-a"
    assert env(rest)[LEASE] == "destination-operator-rest"
    # a shard's own replicas and resources, else the release's
    defaults = deployments(render(helm, {"destinationSelector": "tier!=dev"}))
    (one,) = defaults.values()
    container = one["spec"]["template"]["spec"]["containers"][0]
    assert (a["spec"]["replicas"], rest["spec"]["replicas"]) == (0, one["spec"]["replicas"])
    assert a["spec"]["template"]["spec"]["containers"][0]["resources"] == SMALL
    assert rest["spec"]["template"]["spec"]["containers"][0]["resources"] == container["resources"]

    # and in all else, each is the one Deployment of a release without shards
    assert unsharded(a) == unsharded(rest) == unsharded(one)
    assert set(defaults) == {"destination-operator"}
    assert SHARD not in one["spec"]["template"]["metadata"]["labels"]
    assert env(one)[SELECTOR] == "tier!=dev" and env(one)[LEASE] == "destination-operator"


def test_no_selector_renders_no_variable(helm: Path) -> None:
    # the API server would drop an empty value, and GitOps tools would show the difference
    (one,) = deployments(render(helm, {})).values()
    assert SELECTOR not in env(one)
    (only,) = deployments(
        render(helm, {"shards": [{"name": "x", "destinationSelector": "!tier"}]})
    ).values()
    assert env(only)[SELECTOR] == "!tier"


WRONG = [
    (
        [{"name": "a", "destinationSelector": "s=a"}, {"name": "a", "destinationSelector": "s=b"}],
        'shards: the name "a" is used twice',
    ),
    ([{"name": "a"}], "at '/shards/0': missing property 'destinationSelector'"),
    ([{"destinationSelector": "s=a"}], "at '/shards/0': missing property 'name'"),
    ([{"name": "A", "destinationSelector": "s=a"}], "at '/shards/0/name'"),
    ([{"name": "a", "destinationSelector": ""}], "at '/shards/0/destinationSelector'"),
    ([{"name": "a", "destinationSelector": "s=a", "selector": "s=a"}], "'selector'"),
]


@pytest.mark.parametrize(("shards", "message"), WRONG, ids=[m for _, m in WRONG])
def test_wrong_shards_are_refused_with_a_clear_message(
    helm: Path, shards: list[dict[str, str]], message: str
) -> None:
    with pytest.raises(chart.ChartError) as refused:
        render(helm, {"shards": shards})
    assert message in str(refused.value)
