"""The daemon's telemetry record, from a real bounded run, validates against docs/schemas/telemetry.json
once the MQTT link has added what it adds (the outbox's state and the envelope)."""

from __future__ import annotations

import json

from agent.config.load import load_config
from agent.daemon.supervisor import Daemon
from agent.daemon.telemetry_report import ProcessStats, TelemetryReport
from agent.mqtt.link import DeviceLink, Settings
from agent.mqtt.messages import SequenceFile
from agent.mqtt.outbox import Bounds, Outbox
from tests.mqtt.schemas import validator


def test_the_telemetry_of_a_real_run_is_valid_on_the_wire(demo_dir, tmp_path):
    cfg = load_config(str(demo_dir / "demo.yaml"), [f"paths.state_dir={tmp_path / 'state'}", "source.loop=true"])
    daemon = Daemon(cfg, None, max_frames=5, environ={})
    assert daemon.run() == 0
    report = daemon.telemetry()
    assert isinstance(report, TelemetryReport) and report.pipeline["inferences"] == 5
    body = report.to_json()
    assert list(body) == [
        "pipeline",
        "capture",
        "sources",
        "process",
        "watchdog_pings",
        "system",
        "live_checks",
        "results",
    ]
    (source,) = body["sources"]  # a lone source is the one-item list, id "default"
    assert source["id"] == "default" and source["frames_read"] >= 5 and source["failed"] is False
    assert source["frame_age_ms_p50"] is not None and source["frame_age_ms_p99"] >= source["frame_age_ms_p50"]
    assert list(body["process"]) == ["rss_mb", "open_fds", "threads"]

    outbox = Outbox(tmp_path / "outbox.sqlite", Bounds(1000, 10**7, 1e6))
    # never started: publish_telemetry stores the payload in the outbox
    link = DeviceLink(Settings("127.0.0.1", 1883, store_telemetry=True), "dev1", outbox, SequenceFile(tmp_path / "seq"))
    try:
        link.publish_telemetry(body)
        (message,) = link.outbox.pending()
    finally:
        link.outbox.close()
    payload = json.loads(message.payload)
    errors = [e.message for e in validator("telemetry").iter_errors(payload)]
    assert not errors, errors
    assert payload["pipeline"] == body["pipeline"] and payload["live_checks"] == body["live_checks"]
    assert payload["sources"] == body["sources"]


def test_process_stats_read_this_process():
    stats = ProcessStats.now()
    assert stats.rss_mb > 0 and stats.open_fds > 0 and stats.threads >= 1
