"""The table of figures: figure | measured | floor | ratio | target, from a run's results.

The targets are the ones the figures are judged by (docs/benchmarks.md); the
table only places each figure beside the floor of the same run and its
target, and `meets` says whether it is within it. Nothing here fails a run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Figure:
    figure: str
    measured: str
    floor: str
    ratio: str
    target: str
    meets: bool | None  # None: not measured


def _seconds(value: Any) -> str:
    return "-" if value is None else f"{value} s"


def _ratio(value: Any) -> str:
    return "-" if value is None else f"{value}x"


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "?"


def _kinds(per_kind: dict[str, Any]) -> str:
    return ", ".join(f"{value} {kind}" for kind, value in per_kind.items()) or "none"


def _within(value: Any, limit: float) -> bool | None:
    return None if value is None else float(value) <= limit


def _with_creation(seconds: Any, creation: Any) -> str:
    return f"{_seconds(seconds)} (created in {_seconds(creation)})"


def _versus_contract(r: dict[str, Any], creation: bool) -> Figure:
    """The same figure beside the contract floor (a Reconciling patch, then the result)."""
    floor = r.get("contract_floor_all_verified_s")
    return Figure(
        "  the same, beside the contract floor (2 patches each)",
        "",
        _with_creation(floor, r.get("contract_floor_creation_s")) if creation else _seconds(floor),
        _ratio(r.get("ratio_contract")),
        "-",
        None,
    )


def _new(r: dict[str, Any], count: int) -> list[Figure]:
    return [
        Figure(
            f"{_count(count)} new Destinations, create -> all Verified=True",
            _with_creation(r.get("operator_all_verified_s"), r.get("operator_creation_s")),
            _with_creation(r.get("floor_all_verified_s"), r.get("floor_creation_s")),
            _ratio(r.get("ratio")),
            "<= 1.5 x the floor",
            _within(r.get("ratio"), 1.5),
        ),
        _versus_contract(r, creation=True),
    ]


def _restart_verified(r: dict[str, Any], name: str) -> list[Figure]:
    armed = r.get("armed_s")
    settings = name.removeprefix("restart-verified").strip()
    probes = (r.get("metrics_at_end") or {}).get("destination_operator_probes_total")
    quiet = r.get("s3_requests") == 0 and r.get("api_writes") == 0 and not probes
    return [
        Figure(
            f"operator started with {_count(r.get('stored'))} verified stored"
            f"{f' ({settings})' if settings else ''}: all armed",
            _seconds(armed),
            "-",
            "-",
            "<= 60 s",
            _within(armed, 60),
        ),
        Figure(
            f"  the same, first {r.get('window_s')} s: probes, S3 requests, API writes",
            f"{_count(None if probes is None else int(probes))} probes, "
            f"{r.get('s3_requests')} S3 requests, {r.get('api_writes')} writes",
            "-",
            "-",
            "0 probes, 0 writes",
            quiet if "api_writes" in r else None,
        ),
    ]


def _restart_unverified(r: dict[str, Any]) -> list[Figure]:
    return [
        Figure(
            f"operator started with {_count(r.get('count'))} unverified stored: all Verified=True",
            _seconds(r.get("operator_all_verified_s")),
            _seconds(r.get("floor_all_verified_s")),
            _ratio(r.get("ratio")),
            "<= 1.5 x the floor",
            _within(r.get("ratio"), 1.5),
        ),
        _versus_contract(r, creation=False),
    ]


def _writes(r: dict[str, Any]) -> list[Figure]:
    first = r.get("per_new_destination") or {}
    again = r.get("per_reverification") or {}
    status = first.get("patch destinations/status", 0.0)
    finalizer = first.get("patch destinations", 0.0)
    events = first.get("create events", 0.0)
    new_ok = status <= 2 and finalizer == 0 and events <= 1 if first else None
    again_ok = (
        r.get("per_reverification_total") == 1 and again.get("create events", 0) == 0
        if again
        else None
    )
    return [
        Figure(
            "writes per new Destination",
            f"{status} status patches, {finalizer} finalizer patches, {events} events",
            "1 status patch",
            "-",
            "<= 2 status patches, no finalizer patch; events only on transitions",
            new_ok,
        ),
        Figure(
            f"writes per re-verification ({r.get('reverified')} requested)",
            f"{r.get('per_reverification_total')} ({_kinds(again)})",
            "1 status patch",
            "-",
            "1",
            again_ok,
        ),
        Figure(
            f"writes per minute at rest ({r.get('at_rest_seconds')} s observed)",
            str(r.get("at_rest_per_minute")),
            "-",
            "-",
            "0",
            None if "at_rest_per_minute" not in r else r["at_rest_per_minute"] == 0,
        ),
    ]


def _rss(r: dict[str, Any], count: int) -> list[Figure]:
    peak, where = r.get("peak_at_count_mib"), r.get("peak_at_count_sample") or {}
    rows = [
        Figure(
            f"operator peak RSS (VmHWM) with {_count(count)} Destinations",
            f"{peak} MiB (at {where.get('moment')}); the run's highest {r.get('peak_mib')} MiB",
            "-",
            "-",
            "<= 200 MiB",
            _within(peak, 200),
        )
    ]
    for process, mib in (r.get("peak_by_process_mib") or {}).items():
        rows.append(
            Figure(f"  peak RSS of the operator of `{process}`", f"{mib} MiB", "-", "-", "", None)
        )
    return rows


def mib_per_1000(by_size: dict[str, Any], key: str) -> dict[str, float | None]:
    """For each N > 0 unrelated Secrets: (MiB at N - MiB at 0) per 1,000 of them."""
    base = (by_size.get("0") or {}).get(key)
    per: dict[str, float | None] = {}
    for size, found in by_size.items():
        value = found.get(key)
        if int(size) > 0:
            per[size] = None if base is None or value is None else (value - base) * 1000 / int(size)
    return per


def _secrets(r: dict[str, Any]) -> list[Figure]:
    """One row per N unrelated Secrets, and one for the reads of their data."""
    by_size = r.get("by_unrelated_secrets") or {}
    peak, steady = mib_per_1000(by_size, "peak_mib"), mib_per_1000(by_size, "steady_mib")
    rows = []
    for size, found in by_size.items():
        more = [m for m in (peak.get(size), steady.get(size)) if m is not None]
        against_none = size != "0" and len(more) == 2
        rows.append(
            Figure(
                f"{_count(int(size))} unrelated Secrets of {r.get('secret_kib')} KiB, "
                f"{r.get('destinations')} Destinations: peak (VmHWM) / steady RSS",
                f"{found.get('peak_mib')} / {found.get('steady_mib')} MiB",
                "-",
                " / ".join(f"{m:+.1f} MiB per 1,000" for m in more) if against_none else "-",
                "-" if size == "0" else "<= +10 MiB per 1,000 over none, each",
                all(m <= 10 for m in more) if against_none else None,
            )
        )
    requests = r.get("unrelated_secret_requests")
    if requests is not None:
        rows.append(
            Figure(
                "  the operator's requests naming an unrelated Secret (audit log)",
                _kinds(requests),
                "-",
                "-",
                "none",
                not requests,
            )
        )
    return rows


def _rotation(r: dict[str, Any]) -> Figure:
    seconds = r.get("seconds") or {}
    return Figure(
        f"one Secret of {r.get('count')} Destinations rotated -> all re-verified",
        f"p50 {seconds.get('p50')} s, p99 {seconds.get('p99')} s, max {seconds.get('max')} s",
        "-",
        "-",
        "p99 <= 5 s",
        _within(seconds.get("p99"), 5),
    )


def _single(r: dict[str, Any]) -> Figure:
    operator, floor = r.get("operator_s") or {}, r.get("floor_s") or {}
    return Figure(
        f"one apply -> Verified=True, p50 of {r.get('repeats')}",
        f"{_seconds(operator.get('p50'))} (p90 {operator.get('p90')} s)",
        f"{_seconds(floor.get('p50'))} (p90 {floor.get('p90')} s)",
        _ratio(r.get("ratio_p50")),
        "<= 2 x the floor",
        _within(r.get("ratio_p50"), 2),
    )


def _requests(counted: dict[str, dict[str, Any]], top: int = 3) -> str:
    """The busiest `schema/level` pairs of a phase: dispatched, seconds waited, rejected."""
    return "; ".join(
        f"{pair}: {found.get('dispatched', 0):,} dispatched, {found.get('waited_s', 0)} s waited, "
        f"{found.get('rejected', 0)} rejected"
        for pair, found in list(counted.items())[:top]
    )


def _seats(levels: dict[str, Any]) -> str:
    return "; ".join(
        f"{level}: {found.get('nominal_seats')} seats, {found.get('mean_utilization')} / "
        f"<= {found.get('peak_utilization_at_most')}"
        for level, found in levels.items()
    )


def _flowschema(r: dict[str, Any]) -> list[Figure]:
    floor = _with_creation(r.get("floor_all_verified_s"), r.get("floor_creation_s"))
    rows = []
    for label, text in (("without", "without a FlowSchema"), ("with", "with the chart's")):
        classified = r.get(f"{label}_classified") or {}
        rows += [
            Figure(
                f"{_count(r.get('count'))} new, created by a ServiceAccount, operator {text}",
                _with_creation(r.get(f"{label}_all_verified_s"), r.get(f"{label}_creation_s")),
                floor,
                _ratio(r.get(f"ratio_{label}")),
                "-",
                None,
            ),
            Figure(
                "  classified (schema/level): "
                + ", ".join(
                    f"{who} {found.get('flow_schema')}/{found.get('priority_level')}"
                    for who, found in classified.items()
                ),
                _requests(r.get(f"{label}_requests") or {}),
                "-",
                "-",
                "-",
                None,
            ),
            Figure(
                "  seats in use / nominal seats, mean and at most",
                _seats(r.get(f"{label}_seats") or {}),
                "-",
                "-",
                "-",
                None,
            ),
        ]
    return rows


def figures(scenarios: dict[str, dict[str, Any]], count: int) -> list[Figure]:
    """The table's rows, for the scenarios that recorded anything."""
    rows: list[Figure] = []
    if "new" in scenarios:
        rows += _new(scenarios["new"], count)
    for name in scenarios:  # with each of --restart-also after the first
        if name.startswith("restart-verified"):
            rows += _restart_verified(scenarios[name], name)
    if "restart-unverified" in scenarios:
        rows += _restart_unverified(scenarios["restart-unverified"])
    if "writes" in scenarios:
        rows += _writes(scenarios["writes"])
    if "rss" in scenarios:
        rows += _rss(scenarios["rss"], count)
    if "rotation" in scenarios:
        rows.append(_rotation(scenarios["rotation"]))
    if "single" in scenarios:
        rows.append(_single(scenarios["single"]))
    if "secrets" in scenarios:
        rows += _secrets(scenarios["secrets"])
    if "flowschema" in scenarios:
        rows += _flowschema(scenarios["flowschema"])
    return rows


def as_json(rows: list[Figure]) -> list[dict[str, Any]]:
    return [asdict(row) for row in rows]


def table(rows: list[Figure]) -> str:
    """A Markdown table, columns padded so it also reads as plain text."""
    header = ("figure", "measured", "floor", "ratio", "target")
    cells = [header] + [(r.figure, r.measured, r.floor, r.ratio, r.target) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        return "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |"

    rule = "| " + " | ".join("-" * w for w in widths) + " |"
    return "\n".join([line(header), rule, *(line(row) for row in cells[1:])])
