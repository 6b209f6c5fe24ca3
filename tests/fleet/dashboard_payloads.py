"""Device payloads in the schemas' shapes (docs/schemas), made by agent.mqtt.messages.envelope, for
the dashboard's and the metrics' tests; and a store filled with them through Store.insert."""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Mapping

from agent.daemon import events
from agent.fleet.store import Message, Store
from agent.mqtt.messages import Topics, envelope, utc_timestamp

T0 = 1_800_000_000.0  # a fixed epoch: 2027-01-15


def telemetry(
    fps: float, p50: float, p99: float, mw: float, temps: Mapping[str, float], outbox: int = 0
) -> Dict[str, Any]:
    return {
        "pipeline": {"engine": "fp16", "inferences": 100, "fps": fps, "latency_ms_p50": p50, "latency_ms_p99": p99},
        "system": {"total_mw": mw, "temperatures_c": dict(temps), "total_rail": "VDD_IN"},
        "outbox": {"messages": outbox, "bytes": 100 * outbox, "dropped": 0},
        "dropped": 0,
    }


def status(state: str = "online", precision: str = "fp16") -> Dict[str, Any]:
    return {
        "state": state,
        "version": "0.1.0",
        "engine": {"name": f"model.{precision}", "backend": "onnxruntime", "precision": precision},
        "uptime_s": 12.0,
    }


def benchmark(mj: float, p99: float) -> Dict[str, Any]:
    return {
        "batch": 1,
        "iterations": 100,
        "duration_s": 2.0,
        "throughput_ips": 50.0,
        "latency_ms": {"p50": p99 / 2, "p99": p99},
        "stable": True,
        "cov": 0.01,
        "stages_ms": {},
        "power": {"mean_w": 5.0},
        "energy_mj_per_inference": mj,
        "precision": "fp16",
        "context": {"backend": "onnxruntime", "precision": "fp16", "batch": 1},
        "accuracy": None,
    }


def accuracy(recalls: Mapping[str, float], drift: str = "ok", support: int = 50) -> Dict[str, Any]:
    """An accuracy report over classes with these recalls (a confusion matrix to match) and a drift block."""
    labels = list(recalls)
    matrix: List[List[int]] = []
    for i, name in enumerate(labels):
        hits = round(recalls[name] * support)
        row = [0] * len(labels)
        row[i] = hits
        row[(i + 1) % len(labels)] += support - hits
        matrix.append(row)
    per_class = {
        name: {
            "recall": recalls[name],
            "support": support,
            "recall_ci95": [round(max(0.0, recalls[name] - 0.1), 3), round(min(1.0, recalls[name] + 0.05), 3)],
        }
        for name in labels
    }
    rules = [f"{name}: alert: recall drop 20.0 pp" for name in labels if drift == "alert"]
    return {
        "task": "classification",
        "samples": support * len(labels),
        "classes": labels,
        "matrix_labels": labels,
        "confusion_matrix": matrix,
        "per_class": per_class,
        "accuracy": sum(recalls.values()) / len(labels),
        "drift": {"status": drift, "rules_fired": rules, "per_class": {}},
    }


def drift_event(status: str = "alert") -> Dict[str, Any]:
    """The event the daemon publishes for a check whose drift status is ``status`` (agent.daemon.events)."""
    notice = events.check_drift({"drift": {"status": status, "rules_fired": ["face: recall drop 30 pp"]}})
    assert notice is not None
    return {
        "event": notice.event.value,
        "severity": notice.severity,
        "message": notice.message,
        "details": notice.details,
    }


def build(deltas: Mapping[str, float], passed: bool = True) -> Dict[str, Any]:
    return {
        "status": "swapped" if passed else "rejected",
        "build": {
            "backend": "tensorrt",
            "precision": "int8",
            "built_precision": "int8" if passed else None,
            "gate": {"passed": passed, "per_class_recall_delta": dict(deltas)},
        },
    }


def messages(device: str, bodies: List[Any], first_seq: int = 0, prefix: str = "edge-agent") -> Iterator[Message]:
    """Store rows for (offset s, kind, body) items, numbered in order from ``first_seq``."""
    topics = Topics(prefix, device)
    for seq, (offset, kind, body) in enumerate(bodies, start=first_seq):
        topic = {"status": topics.status, "telemetry": topics.telemetry, "event": topics.event}.get(kind)
        payload = envelope(kind, device, seq, dict(body, ts=utc_timestamp(T0 + offset)))
        yield Message(device, seq, kind, topic or topics.report(kind), T0 + offset, payload)


def fill(store: Store) -> None:
    """Two devices: ``cam-a`` healthy (fp16), ``cam-b`` offline whose recall on ``face`` drifted."""
    a = [(0.0, "status", status())]
    a += [
        (10.0 * i, "telemetry", telemetry(30.0 + i, 8.0, 12.0 + i, 5000.0, {"gpu": 50.0 + i, "cpu": 45.0}))
        for i in range(6)
    ]
    a += [(5.0, "benchmark", benchmark(120.0, 14.0)), (20.0, "accuracy", accuracy({"face": 0.92, "person": 0.88}))]
    a += [(25.0, "build", build({"face": -0.4, "person": 0.2}))]
    b = [(0.0, "status", status()), (70.0, "status", status("offline", "int8"))]
    b += [(10.0 * i, "telemetry", telemetry(15.0, 20.0, 40.0, 9000.0, {"gpu": 70.0}, outbox=3)) for i in range(4)]
    b += [(30.0, "accuracy", accuracy({"face": 0.9, "person": 0.9}))]
    b += [(60.0, "accuracy", accuracy({"face": 0.6, "person": 0.9}, drift="alert"))]
    b += [(61.0, "event", drift_event())]
    store.insert(list(messages("cam-a", a)) + list(messages("cam-b", b)))
