"""Every payload kind the agent puts on the wire validates against its JSON Schema in docs/schemas/."""

from __future__ import annotations

import json
import threading
import time

import pytest

from agent.mqtt.commands import make_request
from agent.mqtt.events import Event

from .brokers import mosquitto_pub
from .conftest import KEY, wait_for
from .schemas import DOCS, kind_of, validator

# The shape agent.measure.benchmark and the daemon produce (the daemon's real reports are validated in tests/daemon).
BENCHMARK = {
    "mode": "engine",
    "batch": 1,
    "iterations": 300,
    "duration_s": 5.0,
    "throughput_ips": 120.5,
    "cov": 0.05,
    "stable": True,
    "latency_ms": {"min": 7.0, "mean": 8.0, "p50": 7.9, "p90": 8.5, "p95": 8.8, "p99": 9.1, "max": 12.0},
    "stages_ms": {"h2d": 0.4, "compute": 7.1, "d2h": 0.2},
    "power": {"mean_w": 7.5},
    "energy_mj_per_inference": 62.2,
    "power_unavailable_reason": None,
    "context": {
        "backend": "tensorrt",
        "precision": "int8",
        "batch": 1,
        "model_sha256": "ab" * 32,
        "engine_sha256": "cd" * 32,
    },
    "accuracy": {"accuracy": 0.98, "recall": {"face": 0.97, "non_face": 0.99}, "drift_status": "ok", "samples": 200},
}


@pytest.mark.mqtt
def test_payloads_on_the_wire_match_their_schemas(make_link, subscribe, broker):
    sub = subscribe("edge-agent/#")
    release = threading.Event()
    link = make_link(
        handlers={
            "rebuild": lambda a, p: p(0.5, "half") or release.wait(5) and {"passed": True},
            "calibrate": lambda a, p: {"frames": 1},
            "status": lambda a, p: {"state": "ok"},
        }
    )
    link.start()
    wait_for(lambda: link.connected, 10, "connection")
    time.sleep(0.2)
    link.publish_report("benchmark", BENCHMARK)
    link.publish_report("accuracy", {"status": "ok", "drift": {"status": "ok"}, "ts": "2026-01-31T10:00:00+00:00"})
    link.publish_report("build", {"precision": "int8", "passed": True})
    link.publish_report("calibration", {"frames": 200, "method": "entropy"})
    link.publish_event(Event.DRIFT, "error", "recall of class face fell", {"class": "face"})
    link.publish_telemetry({"system": {"total_mw": 7500.0, "total_rail": "VDD_IN", "rails": {"VDD_IN": 7500.0}}})
    requests = [
        ("rebuild", make_request(KEY, "dev1", "rebuild", {"precision": "int8"})),
        ("calibrate", make_request(KEY, "dev1", "calibrate", {})),
        ("status", make_request(b"wrong", "dev1", "status", {})),
    ]
    for name, request in requests:
        assert validator("command").is_valid(request)
        mosquitto_pub(broker.port, f"edge-agent/dev1/cmd/{name}", json.dumps(request))
    time.sleep(0.5)
    release.set()
    assert link.commands.wait_idle(5)  # the rebuild's ok answer is handed to the link before it stops
    link.stop(timeout=5)
    seen = {}
    for topic, payload in sub.collect(10**4, timeout=3, where=lambda t, p: "/cmd/" not in t or t.endswith("/response")):
        kind = kind_of(payload)
        errors = [e.message for e in validator(kind).iter_errors(payload)]
        assert not errors, (topic, payload, errors)
        seen.setdefault(kind, set()).add(payload.get("status") or payload.get("state") or "")
    assert set(seen) == {"status", "telemetry", "benchmark", "accuracy", "build", "calibration", "event", "response"}
    assert seen["status"] >= {"online", "stopped"}
    assert seen["response"] >= {"accepted", "progress", "ok", "busy", "error"}


@pytest.mark.parametrize(
    "kind, broken",
    [
        (
            "status",
            {
                "schema": "edge-agent/status/1",
                "device_id": "d",
                "seq": 1,
                "ts": "2026-01-01T00:00:00Z",
                "state": "asleep",
                "version": "1",
                "engine": None,
                "uptime_s": 1,
            },
        ),
        (
            "telemetry",
            {
                "schema": "edge-agent/telemetry/1",
                "device_id": "d",
                "ts": "2026-01-01T00:00:00Z",
                "dropped": 0,
                "outbox": {"messages": 0, "bytes": 0, "dropped": 0},
            },
        ),
        (
            "benchmark",
            {
                "schema": "edge-agent/benchmark/1",
                "device_id": "d",
                "seq": 1,
                "ts": "2026-01-01T00:00:00Z",
                **{**BENCHMARK, "accuracy": None},
            },
        ),
        (
            "telemetry",
            {
                "schema": "edge-agent/telemetry/1",
                "device_id": "d",
                "seq": 1,
                "ts": "2026-01-01T00:00:00Z",
                "dropped": 0,
                "outbox": {"messages": 0, "bytes": 0, "dropped": 0},
                "system": {"total_mw": None},
            },
        ),
        (
            "response",
            {
                "schema": "edge-agent/response/1",
                "device_id": "d",
                "seq": 1,
                "ts": "2026-01-01T00:00:00Z",
                "id": "x",
                "command": "rebuild",
                "status": "error",
            },
        ),
        ("command", {"id": "x", "ts": "2026-01-01T00:00:00Z", "args": {}, "sig": "not-hex"}),
    ],
)
def test_the_schemas_refuse_broken_payloads(kind, broken):
    assert not validator(kind).is_valid(broken)


def test_every_schema_is_a_valid_draft_2020_12_schema():
    from jsonschema import Draft202012Validator

    for _name, doc in DOCS.items():
        Draft202012Validator.check_schema(doc)
