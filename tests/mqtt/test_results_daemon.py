"""End to end: the real daemon (`python -m agent run`) with two sources and a real mosquitto; what it
really sends on results/<source>, snapshot/<source>, event and telemetry, validated against the schemas."""

from __future__ import annotations

import json
import threading
import time
from typing import Dict, List, Tuple

import cv2
import numpy as np
import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from agent.demo.sample import Mosquitto, find_mosquitto
from tests.faults.daemon_proc import DEVICE, AgentProcess, stop_all, write_config

from .schemas import validator


class RawWatcher:
    """Every message under edge-agent/<device>/# as (topic suffix, raw payload): JSON and JPEG alike."""

    def __init__(self, port: int) -> None:
        self.messages: List[Tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{time.monotonic_ns()}")
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(f"edge-agent/{DEVICE}/#", qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        with self.lock:
            self.messages.append((message.topic.split(f"{DEVICE}/", 1)[1], message.payload))

    def json(self, topic: str) -> List[Dict]:
        with self.lock:
            return [json.loads(p) for t, p in self.messages if t == topic]

    def raw(self, topic: str) -> List[bytes]:
        with self.lock:
            return [p for t, p in self.messages if t == topic]

    def ended(self) -> List[Dict]:
        return [e for e in self.json("event") if e["event"] == "object" and e["details"]["state"] == "end"]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _until(condition, timeout: float, agent: AgentProcess, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert agent.alive(), agent.log[-3000:]
        assert time.monotonic() < deadline, f"no {what} within {timeout} s\n{agent.log[-3000:]}"
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.mqtt
@pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed")
def test_the_daemon_publishes_results_per_source_snapshots_and_object_events(tmp_path, demo_dir):
    broker = Mosquitto(str(find_mosquitto()), tmp_path / "broker").start()
    config = write_config(
        tmp_path,
        demo_dir,
        broker.port,
        results={"policy_by_source": {"slow": "max_rate"}, "max_per_s_by_source": {"slow": 2.0}},
        snapshots={
            "enabled": True,
            "classes": ["face"],
            "min_score": 0.5,
            "max_width": 64,
            "min_interval_s": 0.0,
            "end_after_s": 0.2,
        },
    )
    data = yaml.safe_load(config.read_text())
    stream = data.pop("source")
    data["sources"] = [dict(stream, id="fast"), dict(stream, id="slow")]
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    watcher = RawWatcher(broker.port)
    try:
        agent = AgentProcess(config)
        _until(lambda: len(watcher.json("results/fast")) >= 30, 180, agent, "30 results of source fast")
        _until(lambda: watcher.ended() and watcher.raw("snapshot/fast"), 60, agent, "an object's end and a snapshot")
        _until(lambda: any("results" in t for t in watcher.json("telemetry")), 30, agent, "telemetry with results")
        started = time.monotonic()
        slow_before = len(watcher.json("results/slow"))
        time.sleep(3.0)
        slow_rate = (len(watcher.json("results/slow")) - slow_before) / (time.monotonic() - started)
        assert agent.stop() == 0, agent.log[-3000:]
    finally:
        stop_all()
        watcher.close()
        broker.stop()
    for topic in ("results/fast", "results/slow"):
        payloads = watcher.json(topic)
        assert payloads, topic
        for payload in payloads:
            errors = [e.message for e in validator("result").iter_errors(payload)]
            assert not errors, (topic, payload, errors)
            assert payload["source"] == topic.split("/")[1] and payload["task"] == "classification"
            assert payload["top"][0]["label"] in ("face", "non_face")
    assert slow_rate <= 2.0 + 1.0  # max_rate 2/s (one second's worth of slack for the window's edges)
    fast = watcher.json("results/fast")
    assert len({p["top"][0]["label"] for p in fast}) == 2  # the demo stream alternates faces and non-faces
    objects = [e for e in watcher.json("event") if e["event"] == "object"]
    assert objects and all(validator("event").is_valid(e) for e in objects)
    assert {e["details"]["class"] for e in objects} == {"face"}
    assert any(e["details"]["state"] == "end" and e["details"]["duration_s"] >= 0 for e in objects)
    jpeg = watcher.raw("snapshot/fast")[-1]
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[1] <= 64
    telemetry = [t for t in watcher.json("telemetry") if "results" in t]
    for payload in telemetry:
        errors = [e.message for e in validator("telemetry").iter_errors(payload)]
        assert not errors, errors
    last = telemetry[-1]["results"]
    assert last["enabled"] and last["published"] > 0 and last["snapshots"]["events"] > 0
