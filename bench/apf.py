"""The `flowschema` scenario: N new Destinations beside the operator, without and with the
chart's optional FlowSchema (API Priority and Fairness).

The other scenarios create their objects as the admin, a `system:masters`
user whom APF exempts, so a FlowSchema could not change anything there. Here
the Destinations are created by an ordinary ServiceAccount (`bench-creator`,
allowed to create and list Destinations and nothing else), which the API
server's built-in `service-accounts` FlowSchema puts in `workload-low`; the
operator runs under its own ServiceAccount, as everywhere in the benchmark.
Without the chart's FlowSchema both share `workload-low`; with it (the
objects `helm template --set flowSchema.enabled=true` renders, applied to the
bench's API server) the operator's requests have a level of their own.

Each phase starts a warm operator, creates N into a fresh namespace and
times creation and all Verified=True, as `new` does. The one-patch floor runs
first, beside the same creator, without the FlowSchema. What the API server
did is evidenced twice: the X-Kubernetes-PF-FlowSchema-UID and
-PriorityLevel-UID headers of a request of each identity, and the API
server's apiserver_flowcontrol_* counters over each phase (requests
dispatched, rejected and the seconds they waited for a seat, by flow schema
and priority level; each level's nominal seats and the share of them in use).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

import chart
from context import Bench, ratio
from logs import OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT
from objects import GROUP, PLURAL, VERSION, ObjectMaker

CREATOR_NAMESPACE, CREATOR = "bench-creator", "bench-creator"
FLOWCONTROL = ("flowcontrol.apiserver.k8s.io", "v1")
DISPATCHED = "apiserver_flowcontrol_dispatched_requests_total"
REJECTED = "apiserver_flowcontrol_rejected_requests_total"
WAITED = "apiserver_flowcontrol_request_wait_duration_seconds_sum"
COUNTED = {DISPATCHED: "dispatched", REJECTED: "rejected", WAITED: "waited_s"}
SEATS = "apiserver_flowcontrol_nominal_limit_seats"
USED = "apiserver_flowcontrol_priority_level_seat_utilization"  # seats in use / limit
READ = {*COUNTED, SEATS, f"{USED}_sum", f"{USED}_count", f"{USED}_bucket"}

Readings = dict[tuple[str, str, str, str], float]
"""(sample, flow schema, priority level, histogram bound) -> value; "" for a label a
sample does not have."""


def chart_flowcontrol(bin_dir: Path) -> list[dict[str, Any]]:
    """The PriorityLevelConfiguration and FlowSchema the chart renders with
    `flowSchema.enabled`, for the operator's ServiceAccount of manifests/rbac."""
    text = chart.helm_template(bin_dir / "helm", values={"flowSchema": {"enabled": True}})
    rendered = [doc for doc in yaml.safe_load_all(text) if doc]
    found = [doc for doc in rendered if doc["apiVersion"].startswith(FLOWCONTROL[0])]
    subject = next(d for d in found if d["kind"] == "FlowSchema")["spec"]["rules"][0]["subjects"]
    expected = {"name": OPERATOR_SERVICE_ACCOUNT, "namespace": OPERATOR_NAMESPACE}
    if subject[0].get("serviceAccount") != expected:
        raise RuntimeError(f"the chart's FlowSchema matches {subject}, not the bench operator")
    return found


def flowcontrol_readings(api: client.ApiClient) -> Readings:
    """The API server's APF metrics now (`READ`), summed over the labels not kept."""
    response = api.rest_client.pool_manager.request(
        "GET", f"{api.configuration.host}/metrics", timeout=30
    )
    if response.status != 200:
        raise RuntimeError(f"GET /metrics: HTTP {response.status}")
    readings: Readings = {}
    for family in text_string_to_metric_families(response.data.decode()):
        for sample in family.samples:
            if sample.name in READ:
                labels = sample.labels
                key = (sample.name, labels.get("flow_schema", ""))
                key += (labels.get("priority_level", ""), labels.get("le", ""))
                readings[key] = readings.get(key, 0.0) + sample.value
    if not any(key[0] == DISPATCHED for key in readings):
        raise RuntimeError("the API server reports no apiserver_flowcontrol counters: APF is off")
    return readings


def counted_between(before: Readings, after: Readings) -> dict[str, dict[str, float]]:
    """Per `schema/level`, what happened between two readings: requests dispatched and
    rejected, and the seconds they waited for a seat (exempt requests never wait)."""
    out: dict[str, dict[str, float]] = {}
    for key, value in after.items():
        sample, schema, level, _ = key
        grew = value - before.get(key, 0.0)
        if sample in COUNTED and grew > 0:
            found = out.setdefault(f"{schema}/{level}", {})
            found[COUNTED[sample]] = round(grew, 3) if sample == WAITED else int(grew)
    return dict(sorted(out.items(), key=lambda item: -item[1].get("dispatched", 0)))


def seats_between(before: Readings, after: Readings, levels: Iterable[str]) -> dict[str, Any]:
    """Per priority level: its nominal seats, and the share of them in use between two
    readings, on average and at most (the lowest histogram bound all samples are under)."""
    out: dict[str, Any] = {}
    for level in levels:

        def grew(sample: str, bound: str = "", level: str = level) -> float:
            key = (sample, "", level, bound)
            return after.get(key, 0.0) - before.get(key, 0.0)

        found: dict[str, Any] = {"nominal_seats": int(after.get((SEATS, "", level, ""), 0))}
        samples = grew(f"{USED}_count")
        if samples > 0:
            found["mean_utilization"] = round(grew(f"{USED}_sum") / samples, 4)
            bounds = sorted(
                (float(key[3]), key[3])
                for key in after
                if key[0] == f"{USED}_bucket" and key[2] == level
            )
            found["peak_utilization_at_most"] = next(
                (b for b, text in bounds if grew(f"{USED}_bucket", text) >= samples and b <= 1e9),
                None,
            )
        out[level] = found
    return out


def classified(api: client.ApiClient, uids: dict[str, str]) -> dict[str, str]:
    """How the API server classified one request of this identity (a list of one
    Destination): the names of the flow schema and priority level its headers name."""
    response = client.CustomObjectsApi(api).list_cluster_custom_object(
        GROUP, VERSION, PLURAL, limit=1, _preload_content=False
    )
    headers = response.headers
    return {
        "flow_schema": uids.get(headers.get("X-Kubernetes-PF-FlowSchema-UID", ""), "none"),
        "priority_level": uids.get(headers.get("X-Kubernetes-PF-PriorityLevel-UID", ""), "none"),
    }


def flowcontrol_uids(api: client.ApiClient) -> dict[str, str]:
    """uid -> name of every FlowSchema and PriorityLevelConfiguration."""
    objects = client.CustomObjectsApi(api)
    uids = {}
    for plural in ("flowschemas", "prioritylevelconfigurations"):
        for item in objects.list_cluster_custom_object(*FLOWCONTROL, plural)["items"]:
            uids[item["metadata"]["uid"]] = item["metadata"]["name"]
    return uids


def wait_not_dangling(api: client.ApiClient, name: str, timeout: float = 60) -> None:
    """Until the API server has found the FlowSchema's level (Dangling=False)."""
    objects = client.CustomObjectsApi(api)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = objects.get_cluster_custom_object(*FLOWCONTROL, "flowschemas", name)
        conditions = (found.get("status") or {}).get("conditions") or []
        if any(c["type"] == "Dangling" and c["status"] == "False" for c in conditions):
            return
        time.sleep(0.5)
    raise RuntimeError(f"FlowSchema {name} still Dangling after {timeout:.0f} s")


def creator_kubeconfig(bench: Bench) -> Path:
    """An ordinary ServiceAccount that may create and list Destinations, and a token."""
    cluster = bench.env.cluster
    assert cluster is not None
    with bench.env.admin_client() as api:
        client.CoreV1Api(api).create_namespace({"metadata": {"name": CREATOR_NAMESPACE}})
    folder = bench.env.work / "creator"
    folder.mkdir(exist_ok=True)
    rules = [{"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["create", "list"]}]
    return cluster.service_account_kubeconfig(
        CREATOR_NAMESPACE, CREATOR, cluster_rules=rules, out_dir=folder
    )


def _phase(bench: Bench, maker: ObjectMaker, creator: client.ApiClient, label: str) -> float:
    """A warm operator, N created by the creator: the figures of one phase."""
    scenario = "flowschema"
    bench.start_operator(f"flowschema-{label}")
    admin = bench.env.admin_client()
    operator = bench.env.client_for(bench.env.operator_kubeconfig())
    try:
        uids = flowcontrol_uids(admin)
        bench.record(
            scenario,
            f"{label}_classified",
            {"creator": classified(creator, uids), "operator": classified(operator, uids)},
        )
        namespace = bench.namespace(f"bench-apf-{label}")
        before = flowcontrol_readings(admin)
        creation, seconds = bench.create_and_wait(
            namespace, f"{label} FlowSchema: Verified", maker=maker
        )
        after = flowcontrol_readings(admin)
        counted = counted_between(before, after)
        bench.record(scenario, f"{label}_requests", counted)
        levels = {pair.split("/")[1] for pair in counted} - {"exempt"}
        bench.record(scenario, f"{label}_seats", seats_between(before, after, sorted(levels)))
    finally:
        admin.close()
        operator.close()
    bench.record(scenario, f"{label}_creation_s", creation)
    bench.record(scenario, f"{label}_all_verified_s", seconds)
    bench.record(scenario, f"{label}_load_average", [round(v, 2) for v in os.getloadavg()])
    bench.operator.sample(f"flowschema {label}: all verified")
    bench.drop(namespace)
    return seconds


def _apply(bench: Bench, items: Iterable[dict[str, Any]], *args: str) -> None:
    assert bench.env.cluster is not None
    bench.env.cluster.kubectl(*args, "-f", "-", input=yaml.safe_dump_all(list(items)))


def flowschema(bench: Bench) -> None:
    """The one-patch floor, then the operator without and with the chart's FlowSchema (with
    it first when `flowschema_first`), N created by an ordinary ServiceAccount each time."""
    scenario, count = "flowschema", bench.settings.count
    apf = chart_flowcontrol(bench.env.plane.bin_dir)
    schema = next(item for item in apf if item["kind"] == "FlowSchema")["metadata"]["name"]
    kubeconfig = creator_kubeconfig(bench)
    creator = bench.env.client_for(kubeconfig)
    maker = ObjectMaker(lambda: bench.env.client_for(kubeconfig), bench.settings.create_threads)
    bench.record(scenario, "count", count)
    bench.record(scenario, "creator", f"system:serviceaccount:{CREATOR_NAMESPACE}:{CREATOR}")
    try:
        floor_ns = bench.namespace("bench-apf-floor")
        run = bench.spawn_floor(floor_ns, count, wait_ready=True)
        try:
            creation, floor = bench.create_and_wait(
                floor_ns, "floor: Verified", floor=run, maker=maker
            )
        finally:
            bench.record(scenario, "floor_process", bench.end_floor(run))
            bench.drop(floor_ns)
        bench.record(scenario, "floor_creation_s", creation)
        bench.record(scenario, "floor_all_verified_s", floor)

        seconds: dict[str, float] = {}
        for label in (
            ("with", "without") if bench.settings.flowschema_first else ("without", "with")
        ):
            if label == "without":
                seconds[label] = _phase(bench, maker, creator, label)
                continue
            _apply(bench, apf, "apply")
            with bench.env.admin_client() as admin:
                wait_not_dangling(admin, schema)
            try:
                seconds[label] = _phase(bench, maker, creator, label)
            finally:
                _apply(bench, apf, "delete")
        bench.record(scenario, "order", list(seconds))
        for label, value in seconds.items():
            bench.record(scenario, f"ratio_{label}", ratio(value, floor))
    finally:
        maker.close()
        creator.close()
