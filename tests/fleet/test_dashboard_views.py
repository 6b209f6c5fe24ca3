"""The dashboard's pure parts: payloads to fleet rows, chart series, drift marks, build history, pages."""

from __future__ import annotations

import json
import re

import pytest

from agent.fleet import pages, views
from agent.mqtt.messages import envelope, utc_timestamp

from . import dashboard_payloads as P


def payload(kind: str, body: dict, offset: float = 0.0, seq: int = 0) -> dict:
    return envelope(kind, "cam", seq, dict(body, ts=utc_timestamp(P.T0 + offset)))


def test_fleet_row_takes_every_column_from_the_latest_payloads() -> None:
    device = {
        "device_id": "cam",
        "last_seen": P.T0 + 9,
        "online": True,
        "status": payload("status", P.status(precision="int8")),
        "telemetry": payload("telemetry", P.telemetry(29.5, 8.0, 12.5, 6500.0, {"gpu": 61.0, "cpu": 70.5}), 9),
        "benchmark": payload("benchmark", P.benchmark(80.0, 99.0), 1),
        "accuracy": payload("accuracy", P.accuracy({"face": 0.9}, drift="warn"), 2),
    }
    row = views.fleet_row(device)
    assert row == {
        "device": "cam",
        "online": True,
        "state": "online",
        "engine": "model.int8",
        "precision": "fp16",  # the benchmark's, as the monitor reads it
        "fps": 29.5,
        "sources": None,
        "p50_ms": 8.0,
        "p99_ms": 12.5,  # live telemetry wins over the older benchmark's 99 ms
        "power_w": 6.5,
        "mj_per_inference": 80.0,
        "temperature_c": 70.5,
        "recall": "warn",
        "last_seen": P.T0 + 9,
    }


def test_the_newer_of_a_drift_event_and_an_accuracy_report_sets_the_recall_status() -> None:
    event = payload("event", P.drift_event(), 5)
    ok_later = payload("accuracy", P.accuracy({"face": 0.9}), 6)
    ok_earlier = payload("accuracy", P.accuracy({"face": 0.9}), 4)
    assert views.fleet_row({"device_id": "c", "event": event, "accuracy": ok_later})["recall"] == "ok"
    assert views.fleet_row({"device_id": "c", "event": event, "accuracy": ok_earlier})["recall"] == "alert"


def test_a_device_with_nothing_but_its_id_is_an_offline_row_of_unknowns() -> None:
    row = views.fleet_row({"device_id": "quiet"})
    assert row["state"] == "offline" and row["online"] is False
    assert all(row[k] is None for k in ("fps", "p99_ms", "power_w", "temperature_c", "recall", "last_seen"))


def test_telemetry_series_are_columns_in_chart_units_with_gaps_for_missing_figures() -> None:
    full = payload("telemetry", P.telemetry(30.0, 5.0, 9.0, 4500.0, {"a": 40.0, "b": 41.0}))
    bare = payload("telemetry", {"dropped": 0, "outbox": {"messages": 0, "bytes": 0, "dropped": 0}}, 5)
    series = views.telemetry_series([(P.T0, full), (utc_timestamp(P.T0 + 5), bare)])
    assert series == {
        "t": [P.T0, P.T0 + 5],
        "latency_p50_ms": [5.0, None],
        "latency_p99_ms": [9.0, None],
        "fps": [30.0, None],
        "power_w": [4.5, None],
        "temperature_c": [41.0, None],
    }


def test_recall_series_carry_each_classes_band_and_a_gap_where_a_report_lacks_the_class() -> None:
    first = P.accuracy({"face": 0.9, "person": 0.8})
    second = P.accuracy({"face": 0.5})
    series = views.recall_series([(P.T0, first), (P.T0 + 60, second)])
    assert series["t"] == [P.T0, P.T0 + 60]
    assert series["classes"]["face"] == {"recall": [0.9, 0.5], "low": [0.8, 0.4], "high": [0.95, 0.55]}
    assert series["classes"]["person"]["recall"] == [0.8, None]


def test_class_recalls_fall_back_to_the_drift_block() -> None:
    report = {"drift": {"status": "ok", "per_class": {"face": {"recall": 0.7, "recall_ci95": [0.6, 0.8]}}}}
    assert views.class_recalls(report) == {"face": (0.7, 0.6, 0.8)}


def test_drift_marks_are_drift_events_and_non_ok_reports_oldest_first() -> None:
    events = [(P.T0 + 30, P.drift_event("warn")), (P.T0 + 1, {"event": "camera_lost", "severity": "error"})]
    reports = [(P.T0 + 10, P.accuracy({"face": 0.5}, drift="alert")), (P.T0 + 20, P.accuracy({"face": 0.9}))]
    marks = views.drift_marks(events, reports)
    assert [(m["t"], m["severity"]) for m in marks] == [(P.T0 + 10, "alert"), (P.T0 + 30, "warn")]
    assert marks[0]["message"] == "face: alert: recall drop 20.0 pp"
    assert marks[1]["message"] == "per-class recall drift: warn"


@pytest.mark.parametrize(
    "event, status",
    [
        ({"event": "drift", "severity": "error", "details": {"drift": {"status": "alert"}}}, "alert"),
        ({"event": "drift", "severity": "warning", "details": {"source": "shadow"}}, "warn"),
        ({"event": "drift", "severity": "error", "details": {}}, "alert"),
        ({"event": "camera_lost", "severity": "error"}, None),
    ],
)
def test_event_drift_status_reads_details_then_severity(event: dict, status: str) -> None:
    assert views.event_drift_status(event) == status


def test_build_history_reads_the_rebuild_result_and_a_bare_report_newest_first() -> None:
    bare = {"precision": "fp16", "built_precision": "fp16", "passed": True}
    history = views.build_history([(P.T0, P.build({"face": -1.5}, passed=False)), (P.T0 + 5, bare)])
    assert history[0] == {
        "t": P.T0 + 5,
        "status": None,
        "precision": "fp16",
        "asked": "fp16",
        "passed": True,
        "decision": None,
        "deltas_pp": {},
    }
    assert history[1]["status"] == "rejected" and history[1]["passed"] is False
    assert history[1]["deltas_pp"] == {"face": -1.5} and history[1]["precision"] == "int8"


@pytest.mark.parametrize(
    "report",
    [{}, {"confusion_matrix": [[1]], "matrix_labels": []}, {"confusion_matrix": [[1, 2]], "matrix_labels": ["a"]}],
)
def test_a_missing_or_ragged_confusion_matrix_is_none(report: dict) -> None:
    assert views.confusion(report) is None


def test_confusion_returns_the_matrix_and_labels() -> None:
    matrix, labels = views.confusion(P.accuracy({"face": 0.9, "person": 0.8}))
    assert labels == ["face", "person"] and matrix == [[45, 5], [10, 40]]


def rows() -> list:
    return [
        {"device": "b", "online": True, "state": "online", "fps": 10.0, "recall": "ok", "last_seen": P.T0},
        {"device": "a", "online": False, "state": "offline", "fps": None, "recall": "alert", "last_seen": P.T0},
        {"device": "c", "online": True, "state": "online", "fps": 30.0, "recall": "ok", "last_seen": P.T0},
    ]


def test_sort_rows_puts_unknown_values_last_in_either_direction() -> None:
    assert [r["device"] for r in pages.sort_rows(rows(), "fps")] == ["b", "c", "a"]
    assert [r["device"] for r in pages.sort_rows(rows(), "fps", descending=True)] == ["c", "b", "a"]
    with pytest.raises(ValueError, match="unknown column 'nope'"):
        pages.sort_rows(rows(), "nope")


def test_filter_rows_matches_any_cell_as_shown() -> None:
    assert [r["device"] for r in pages.filter_rows(rows(), "ALERT")] == ["a"]
    assert [r["device"] for r in pages.filter_rows(rows(), "30.0")] == ["c"]
    assert len(pages.filter_rows(rows(), "  ")) == 3


def test_fleet_page_escapes_device_values_and_links_each_device() -> None:
    hostile = dict(rows()[0], device="<script>x</script>", engine='"><b>')
    html = pages.fleet_page([hostile])
    assert "<script>x" not in html and "&lt;script&gt;x&lt;/script&gt;" in html and '"><b>' not in html
    assert 'href="/device/%3Cscript%3Ex%3C%2Fscript%3E"' in html


def test_device_page_embeds_its_data_as_json_that_cannot_close_the_script() -> None:
    data = pages.device_data(views.telemetry_series([]), views.recall_series([]), [], [])
    data["drift"] = [{"t": 1.0, "severity": "alert", "message": "</script><script>alert(1)</script>"}]
    html = pages.device_page("cam", rows()[0], data, has_confusion=False, commands=False)
    embedded = re.search(r'<script type="application/json" id="device-data">(.*?)</script>', html, re.S)
    assert embedded is not None and json.loads(embedded.group(1)) == data
    assert "read-only" in html and 'id="command"' not in html


def test_device_page_lists_the_latest_recall_per_class_with_a_dash_for_null() -> None:
    empty = pages.device_data(views.telemetry_series([]), views.recall_series([]), [], [])
    assert '<p class="none">no accuracy report</p>' in pages.device_page("cam", None, empty, False, False)
    report = P.accuracy({"face": 0.5, "person": 0.9})
    report["per_class"]["person"].update(recall=None, recall_ci95=[None, None])  # no labeled person
    data = pages.device_data(views.telemetry_series([]), views.recall_series([(P.T0, report)]), [], [])
    html = pages.device_page("cam", None, data, has_confusion=False, commands=False)
    assert '<tr class="recall" data-class="person"><td>person</td><td>-</td><td>-</td><td>-</td></tr>' in html
    assert '<tr class="recall" data-class="face"><td>face</td><td>0.50</td>' in html


def test_device_page_shows_the_command_form_only_with_a_key() -> None:
    data = pages.device_data(views.telemetry_series([]), views.recall_series([]), [], [])
    html = pages.device_page("cam", None, data, has_confusion=True, commands=True, answer="ok <done>")
    assert 'id="command"' in html and 'src="/device/cam/confusion.png"' in html
    assert all(f'value="{c}"' in html for c in ("rebuild", "check", "benchmark"))
    assert "ok &lt;done&gt;" in html
