"""The daemon's event policy (agent.daemon.events): which outcomes become events, and how."""

from __future__ import annotations

import logging

import pytest

from agent.daemon import events
from agent.mqtt.events import Event
from agent.mqtt.publisher import LogPublisher


@pytest.mark.parametrize("status, severity", [("warn", "warning"), ("alert", "error")])
def test_check_drift_raises_warn_as_a_warning_and_alert_as_an_error(status, severity):
    drift = {"status": status, "rules_fired": ["face recall -0.2"]}
    notice = events.check_drift({"drift": drift})
    assert notice == (Event.DRIFT, severity, f"per-class recall drift: {status}", {"drift": drift})


@pytest.mark.parametrize("check", [{}, {"drift": None}, {"drift": {"status": "ok"}}])
def test_a_check_without_drift_is_no_event(check):
    assert events.check_drift(check) is None


def test_live_label_drift_names_the_rules_that_fired():
    notice = events.live_label_drift({"status": "alert", "rules_fired": ["a", "b"]})
    assert notice is not None and notice.event is Event.DRIFT and notice.severity == "error"
    assert notice.message == "labeled live frames: per-class recall drift alert (a; b)"
    assert notice.details["source"] == "live_labels"
    assert events.live_label_drift(None) is None


def test_shadow_disagreement_lists_the_classes_in_order():
    low = {"non_face": {"agreement": 0.5}, "face": {"agreement": 0.6}}
    notice = events.shadow_disagreement(low, "onnxruntime int8", 0.9)
    assert notice is not None and notice.severity == "warning"
    assert notice.message == "live frames: agreement with the FP32 reference below 0.9 for face, non_face"
    assert notice.details == {"source": "shadow", "engine": "onnxruntime int8", "min_agreement": 0.9, "per_class": low}
    assert events.shadow_disagreement({}, "onnxruntime int8", 0.9) is None


def test_camera_lost_only_for_new_reopens():
    stats = {"reopens": 2, "last_error": "read timed out"}
    assert events.camera_lost(stats, 2) is None
    notice = events.camera_lost(stats, 1)
    assert notice == (Event.CAMERA_LOST, "warning", "the source was re-opened: read timed out", stats)


def test_engine_swapped_warns_past_the_gap_bound():
    swap = {"from": "onnxruntime fp32", "to": "onnxruntime int8", "gap_ms": 40.0}
    within = events.engine_swapped(swap, 500.0)
    assert within.severity == "info" and within.details["within_bound"] is True
    assert within.message == "now serving onnxruntime int8 (gap 40.0 ms)"
    beyond = events.engine_swapped(swap, 10.0)
    assert beyond.severity == "warning" and beyond.details == dict(swap, max_swap_gap_ms=10.0, within_bound=False)


def test_a_rebuild_that_did_not_swap_is_a_build_failure():
    result = {"job": "j1", "requested_precision": "int8", "status": "rejected", "error": "recall fell", "build": {}}
    notice = events.rebuild_not_promoted(result)
    assert notice == (
        Event.BUILD_FAILED,
        "error",
        "int8 engine not promoted: recall fell",
        {"job": "j1", "requested_precision": "int8", "status": "rejected", "reason": None},
    )
    assert events.rebuild_not_promoted(dict(result, status="swapped")) is None
    start = events.start_not_promoted("int8", "recall fell")
    assert start.message == "int8 engine not promoted: recall fell; serving FP32" and start.details == {
        "precision": "int8"
    }


@pytest.mark.parametrize("name, event", [("benchmark", Event.BENCHMARK_FAILED), ("check", Event.CHECK_FAILED)])
def test_a_failed_measurement_names_itself(name, event):
    assert events.measurement_failed(name, RuntimeError("no frames")) == (event, "warning", f"{name}: no frames", {})


def test_labels_rejected_only_with_errors():
    outcome = {"applied": 1, "errors": ["line 2: unknown id"]}
    notice = events.labels_rejected(outcome)
    assert notice is not None and notice.message == "1 dropped label line(s) refused" and notice.details == outcome
    assert events.labels_rejected({"applied": 3, "errors": []}) is None
    assert events.labels_rejected(None) is None


def test_config_events():
    assert events.config_rejected(["x: bad"]).details == {"errors": ["x: bad"]}
    reloaded = events.config_reloaded({"status": "reloaded", "changed": [], "applied": [], "needs_restart": []})
    assert reloaded.severity == "info" and reloaded.message == "configuration reloaded; changed: nothing"


def test_publish_sends_a_notice_and_skips_none(caplog):
    publisher = LogPublisher(dict)
    caplog.set_level(logging.INFO, logger="agent.mqtt.publisher")
    events.publish(publisher, None)
    events.publish(publisher, events.baseline_failed(RuntimeError("no spot labels")))
    assert [r.getMessage() for r in caplog.records] == [
        'event baseline_failed: {"details": {}, "message": "no baseline for the promoted engine: no spot labels", '
        '"severity": "warning"}'
    ]
    assert publisher.seq == 1


def test_throttling_events_on_a_change_of_state_only():
    from agent.telemetry.throttle import throttling

    busy = {"gpu_load_pct": 99.0, "clocks": {"gpu_mhz": 1300}}
    power_capped = {"gpus": [{"index": 0, "clocks_event_reasons": {"throttling": ["sw_power_cap"]}}]}
    calm = {"gpus": [{"index": 0, "clocks_event_reasons": {"throttling": []}}]}
    dropped = throttling([busy, dict(busy, clocks={"gpu_mhz": 600})])  # a Jetson GPU clock halved under load
    started = events.throttling_changed(False, throttling([power_capped]))
    assert started.event == Event.THROTTLING and started.severity == "warning"
    assert "GPU0" in started.message and "sw_power_cap" in started.message
    assert events.throttling_changed(None, dropped).message.startswith("throttling: GPU clock dropped")
    assert events.throttling_changed(True, throttling([power_capped])) is None  # still throttling: nothing new
    ended = events.throttling_changed(True, throttling([calm]))
    assert ended.severity == "info" and ended.message == "throttling ended"
    assert events.throttling_changed(True, throttling([{}])) is None  # unknown: no claim either way
