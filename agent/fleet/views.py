"""What the dashboard and ``/metrics`` show, from stored payloads: pure functions, no I/O.

Payload shapes are docs/schemas/*.json; kinds are the store's (agent.fleet.ingest: ``status``,
``telemetry``, ``event``, ``benchmark``, ``accuracy``, ``build``, ...). The fleet table's figures
are read by the operator's ``monitor`` rules (agent.mqtt.fleet), so the dashboard and the terminal
table agree.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

from agent.mqtt.fleet import COLUMNS, FleetView, _first
from agent.mqtt.fleet import _number as number
from agent.mqtt.messages import parse_timestamp

Series = List[Tuple[Any, Mapping[str, Any]]]  # (ts, payload), oldest first

# The fleet table's columns: the monitor's, plus the hottest temperature before the recall status.
_AT = [key for key, _ in COLUMNS].index("recall")
TABLE_COLUMNS: Tuple[Tuple[str, str], ...] = COLUMNS[:_AT] + (("temperature_c", "°C"),) + COLUMNS[_AT:]

# Telemetry series on the device page: name -> dotted path in the telemetry payload.
TELEMETRY_SERIES: Tuple[Tuple[str, str], ...] = (
    ("latency_p50_ms", "pipeline.latency_ms_p50"),
    ("latency_p99_ms", "pipeline.latency_ms_p99"),
    ("fps", "pipeline.fps"),
    ("power_w", "system.total_mw"),
    ("temperature_c", "system.temperatures_c"),
)
# The store's kind -> (the monitor's name for it, its rank): the latest payloads are applied by rank,
# then time, so live telemetry beats a benchmark's figures and the newer of an accuracy report and a
# drift event sets the recall status.
_MONITOR_KINDS = {
    "status": ("status", 0),
    "benchmark": ("report/benchmark", 1),
    "accuracy": ("report/accuracy", 2),
    "event": ("event", 2),
    "telemetry": ("telemetry", 3),
}


def epoch(ts: Any) -> float:
    """Seconds since the epoch from a stored timestamp (a number or the envelope's RFC 3339 text)."""
    if isinstance(ts, (int, float)) and not isinstance(ts, bool):
        return float(ts)
    return parse_timestamp(ts)


def dig(data: Any, path: str) -> Any:
    """The value at a dotted path, or None where any step is missing (the monitor's own lookup)."""
    return _first(data, (path,)) if isinstance(data, dict) else None


def hottest(telemetry: Mapping[str, Any]) -> Optional[float]:
    """The highest of the telemetry's temperatures in °C, or None without any."""
    temps = dig(telemetry, "system.temperatures_c")
    values = [v for v in (number(x) for x in temps.values()) if v is not None] if isinstance(temps, dict) else []
    return max(values) if values else None


def fleet_row(device: Mapping[str, Any]) -> Dict[str, Any]:
    """One fleet-table row from a store's device record (``device_id``, ``last_seen``, ``online``,
    and the latest payload of each kind under its kind's name)."""
    row: Dict[str, Any] = {key: None for key, _ in TABLE_COLUMNS}
    latest = [
        (rank, str(device[kind].get("ts", "")), name, device[kind])
        for kind, (name, rank) in _MONITOR_KINDS.items()
        if isinstance(device.get(kind), dict)
    ]
    for _, _, name, payload in sorted(latest, key=lambda item: item[:2]):
        if name == "event":
            row["recall"] = event_drift_status(payload) or row["recall"]
        else:
            FleetView._apply(row, name, payload)
    telemetry = device.get("telemetry")
    row["temperature_c"] = hottest(telemetry) if isinstance(telemetry, dict) else None
    row["device"] = device.get("device_id")
    row["online"] = bool(device.get("online"))
    row["state"] = row["state"] or ("online" if row["online"] else "offline")
    last = device.get("last_seen")
    row["last_seen"] = epoch(last) if last is not None else None
    return row


def telemetry_series(rows: Series) -> Dict[str, List[Optional[float]]]:
    """Columns for the device page's charts: ``t`` (epoch s) and each of TELEMETRY_SERIES (power in
    W, the hottest temperature), None where a report lacks a figure."""
    out: Dict[str, List[Optional[float]]] = {"t": []}
    out.update({name: [] for name, _ in TELEMETRY_SERIES})
    for ts, payload in rows:
        out["t"].append(epoch(ts))
        for name, path in TELEMETRY_SERIES:
            if name == "temperature_c":
                out[name].append(hottest(payload))
            elif name == "power_w":
                mw = number(dig(payload, path))
                out[name].append(mw / 1000.0 if mw is not None else None)
            else:
                out[name].append(number(dig(payload, path)))
    return out


def class_recalls(report: Mapping[str, Any]) -> Dict[str, Tuple[Optional[float], Optional[float], Optional[float]]]:
    """Class -> (recall, Wilson 95% low, high) of one accuracy report (its per_class block, else
    its drift block's)."""
    per_class = report.get("per_class")
    if not isinstance(per_class, dict) or not per_class:
        per_class = dig(report, "drift.per_class")
    out = {}
    for name, figures in (per_class or {}).items():
        if not isinstance(figures, dict):
            continue
        band = figures.get("recall_ci95")
        low, high = (band[0], band[1]) if isinstance(band, list) and len(band) == 2 else (None, None)
        out[str(name)] = (number(figures.get("recall")), number(low), number(high))
    return out


def recall_series(rows: Series) -> Dict[str, Any]:
    """Per-class recall over time with its band: ``t`` and, per class, ``recall``, ``low``, ``high``."""
    reports = [(epoch(ts), class_recalls(payload)) for ts, payload in rows]
    names = sorted({name for _, recalls in reports for name in recalls})
    classes: Dict[str, Dict[str, List[Optional[float]]]] = {}
    for name in names:
        triples = [recalls.get(name, (None, None, None)) for _, recalls in reports]
        classes[name] = {key: [t[i] for t in triples] for i, key in enumerate(("recall", "low", "high"))}
    return {"t": [t for t, _ in reports], "classes": classes}


def drift_status(report: Mapping[str, Any]) -> Optional[str]:
    """An accuracy report's drift status (``ok``, ``warn``, ``alert``), None without a drift block."""
    status = dig(report, "drift.status")
    return status if isinstance(status, str) else None


# A drift event's severity for each drift status (agent.daemon.events.SEVERITY_OF_DRIFT), reversed.
_STATUS_OF_SEVERITY = {"warning": "warn", "error": "alert"}


def event_drift_status(event: Mapping[str, Any]) -> Optional[str]:
    """A ``drift`` event's status (its details' drift status, else read from its severity); None
    for any other event."""
    if event.get("event") != "drift":
        return None
    status = dig(event, "details.drift.status")
    if isinstance(status, str):
        return status
    return _STATUS_OF_SEVERITY.get(str(event.get("severity")), "warn")


def drift_marks(events: Series, accuracy: Series) -> List[Dict[str, Any]]:
    """Drift to mark on the recall chart: every ``drift`` event and every accuracy report whose drift
    status is not ok, oldest first, each with ``t``, ``severity`` (the drift status: warn or alert)
    and ``message``."""
    marks = []
    for ts, event in events:
        status = event_drift_status(event)
        if status is not None:
            marks.append({"t": epoch(ts), "severity": status, "message": event.get("message") or ""})
    for ts, report in accuracy:
        status = drift_status(report)
        if status not in (None, "ok"):
            rules = dig(report, "drift.rules_fired")
            message = "; ".join(str(r) for r in rules) if isinstance(rules, list) else ""
            marks.append({"t": epoch(ts), "severity": status, "message": message})
    return sorted(marks, key=lambda mark: mark["t"])


def build_entry(ts: Any, payload: Mapping[str, Any]) -> Dict[str, Any]:
    """One line of the engine build history from a ``build`` payload (the daemon's rebuild
    result, its report under ``build``, or a bare build report)."""
    inner = payload.get("build")
    report: Mapping[str, Any] = inner if isinstance(inner, dict) else payload
    found = report.get("gate")
    gate: Mapping[str, Any] = found if isinstance(found, dict) else {}
    deltas = gate.get("per_class_recall_delta")
    return {
        "t": epoch(ts),
        "status": payload.get("status"),
        "precision": report.get("built_precision") or report.get("precision"),
        "asked": report.get("precision"),
        "passed": gate.get("passed", payload.get("passed")),
        "decision": report.get("decision"),
        "deltas_pp": {str(k): number(v) for k, v in deltas.items()} if isinstance(deltas, dict) else {},
    }


def build_history(rows: Series) -> List[Dict[str, Any]]:
    """The build history, newest first."""
    return sorted((build_entry(ts, payload) for ts, payload in rows), key=lambda entry: -entry["t"])


def confusion(report: Mapping[str, Any]) -> Optional[Tuple[List[List[int]], List[str]]]:
    """(matrix, labels) of an accuracy report, None when it has none or it is not square over its labels."""
    matrix, labels = report.get("confusion_matrix"), report.get("matrix_labels")
    if not isinstance(matrix, list) or not isinstance(labels, list) or not labels:
        return None
    if len(matrix) != len(labels) or any(not isinstance(r, list) or len(r) != len(labels) for r in matrix):
        return None
    return [[int(c) for c in r] for r in matrix], [str(label) for label in labels]
