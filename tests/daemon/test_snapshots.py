"""Object start/end tracking (pure logic), snapshot JPEGs with boxes drawn, and both through a real mosquitto."""

from __future__ import annotations

import dataclasses
import queue
import time
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.config.load import load_config
from agent.config.sections import Config
from agent.daemon.snapshots import ObjectTracker, SnapshotPublisher, present_classes, render_snapshot
from agent.mqtt.link import DeviceLink, Settings
from agent.mqtt.messages import SequenceFile
from agent.mqtt.outbox import Bounds, Outbox
from agent.sources.frames import Frame
from tests.mqtt.brokers import Broker
from tests.mqtt.conftest import Subscriber, wait_for
from tests.mqtt.schemas import validator

BOX = [100.0, 100.0, 300.0, 260.0]


def _face(score: float = 0.9):
    return {"label": "face", "index": 0, "score": score, "box": BOX}


def _settings(**changes):
    return dataclasses.replace(Config.from_node(load_config(None, ["snapshots.enabled=true"])).snapshots, **changes)


def test_an_object_starts_once_and_ends_after_end_after_s_with_its_duration():
    tracker = ObjectTracker(end_after_s=1.0)
    assert [t.state for t in tracker.update("door", {"face": 0.8}, 10.0)] == ["start"]
    assert tracker.update("door", {"face": 0.95}, 10.5) == []
    assert tracker.update("door", {}, 11.0) == []  # unseen for 0.5 s only
    assert tracker.update("yard", {"face": 0.7}, 11.2)[0].source == "yard"  # sources are tracked apart
    (end,) = tracker.update("door", {}, 11.6)
    assert (end.state, end.label, end.score, end.duration_s) == ("end", "face", 0.95, 0.5)
    assert [t.state for t in tracker.update("door", {"face": 0.9}, 12.0)] == ["start"]  # a new appearance


def test_present_classes_applies_the_threshold_and_the_class_list():
    result = {"detections": [_face(0.4), _face(0.6), {"label": "car", "index": 1, "score": 0.99, "box": BOX}]}
    assert present_classes(result, [], 0.5) == {"face": 0.6, "car": 0.99}
    assert present_classes(result, ["face"], 0.5) == {"face": 0.6}
    assert present_classes(result, ["face"], 0.7) == {}
    assert present_classes({"top": [{"label": "face", "index": 0, "score": 0.8}]}, [], 0.5) == {"face": 0.8}


def _red(pixel: np.ndarray) -> bool:
    b, g, r = (int(v) for v in pixel)
    return r > 150 and r - g > 80 and r - b > 80


def test_the_snapshot_has_the_box_drawn_and_is_scaled_to_max_width():
    image = np.full((480, 640, 3), 128, dtype=np.uint8)
    jpeg = render_snapshot(image, {"detections": [_face()]}, max_width=320, quality=90)
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (240, 320, 3)
    assert _red(decoded[90, 50]) and _red(decoded[90, 150])  # left and right edges, halved
    assert not _red(decoded[90, 100]) and not _red(decoded[200, 250])  # inside and outside the box
    assert image[100, 100].tolist() == [128, 128, 128]  # the frame itself is left alone


def _retained(port: int, topic: str, timeout: float = 10.0) -> bytes:
    """The retained message on ``topic``, read by a paho client that subscribes after it was sent."""
    got: "queue.Queue[bytes]" = queue.Queue()
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, u, f, r, p: c.subscribe(topic)
    client.on_message = lambda c, u, m: got.put(m.payload) if m.retain else None
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        return got.get(timeout=timeout)
    finally:
        client.loop_stop()
        client.disconnect()


@pytest.mark.mqtt
def test_object_events_and_a_retained_snapshot_over_mosquitto(tmp_path: Path):
    broker = Broker(tmp_path / "broker").start()
    events = Subscriber(broker.port, "edge-agent/dev1/event")
    link = DeviceLink(
        Settings("127.0.0.1", broker.port, reconnect_min_s=0.1, reconnect_max_s=0.5),
        "dev1",
        Outbox(tmp_path / "outbox.sqlite", Bounds(1000, 10**7, 1e6)),
        SequenceFile(tmp_path / "seq"),
    )
    snapshots = SnapshotPublisher(link, _settings(end_after_s=0.5, max_width=320, min_interval_s=0.0))
    try:
        time.sleep(0.3)
        link.start()
        wait_for(lambda: link.connected, 10, "connection")
        snapshots.start()
        image = np.full((480, 640, 3), 128, dtype=np.uint8)
        base = time.time()
        for i in range(8):  # a face for four frames, then none for long enough to end it
            detections = [_face()] if i < 4 else []
            result = {"source": "door", "frame": i, "frame_time": base + i * 0.25, "detections": detections}
            snapshots.offer([(Frame(image, i, time.monotonic(), "door"), result)])
        wait_for(lambda: snapshots.events == 2, 10, "start and end events")
        got = events.collect(2, timeout=10)
        jpeg = _retained(broker.port, "edge-agent/dev1/snapshot/door")
    finally:
        snapshots.stop()
        link.stop(timeout=2)
        events.close()
        broker.stop()
    start, end = (p for _, p in got)
    for payload in (start, end):
        assert validator("event").is_valid(payload), payload
        assert payload["event"] == "object" and payload["details"]["source"] == "door"
    assert start["details"]["state"] == "start" and start["details"]["snapshot"] is True
    assert end["details"]["state"] == "end" and end["details"]["duration_s"] == 0.75
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (240, 320, 3) and _red(decoded[90, 50])
    assert snapshots.stats() == {"published": 1, "events": 2, "dropped": 0, "failed": 0}


def test_snapshots_are_rate_bounded_per_source():
    from agent.mqtt.publisher import LogPublisher

    clock = [0.0]
    snapshots = SnapshotPublisher(LogPublisher(dict), _settings(end_after_s=0.0, min_interval_s=10.0), lambda: clock[0])
    image = np.zeros((48, 64, 3), dtype=np.uint8)
    for i in range(6):  # the face comes and goes every frame: a start every other frame
        clock[0] = float(i)
        result = {"source": "door", "frame": i, "frame_time": float(i), "detections": [_face()] if i % 2 == 0 else []}
        snapshots.offer([(Frame(image, i, 0.0, "door"), result)])
    snapshots.start()
    wait_for(lambda: snapshots.events == 6, 10, "three starts and three ends")
    snapshots.stop()
    assert snapshots.snapshots == 1  # starts at 0, 2 and 4 s; only the first is 10 s after the previous
