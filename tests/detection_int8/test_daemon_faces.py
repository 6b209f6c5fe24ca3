"""Acceptance: `python -m agent run` with CenterFace on a folder of dlib's photos and a real
mosquitto publishes accuracy reports (scheduled checks on the labeled faces) with face recall."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml

from tests.detection_int8.faces import FACES, centerface_config, have_faces
from tests.mqtt.brokers import MOSQUITTO, Broker

pytestmark = [
    pytest.mark.slow,
    pytest.mark.mqtt,
    pytest.mark.skipif(not Path(MOSQUITTO).is_file(), reason="mosquitto is not installed"),
    pytest.mark.skipif(not have_faces(), reason="dlib's face photos are absent: run scripts/debian_fixtures.sh"),
]
DEVICE = "faces-device"
REPO = Path(__file__).resolve().parents[2]


def collect(port: int, topic: str, into: List[Dict[str, Any]]) -> Any:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    lock = threading.Lock()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"faces-watch-{os.getpid()}")
    client.on_connect = lambda c, u, f, r, p: c.subscribe(topic, qos=1)

    def on_message(c: Any, u: Any, message: Any) -> None:
        with lock:
            into.append(json.loads(message.payload))

    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


@pytest.mark.parametrize("decoder", [None, "tests.detection_int8.user_decoder:decode"])
def test_daemon_publishes_face_recall_from_scheduled_checks(tmp_path: Path, decoder: Any) -> None:
    """The built-in centernet decoder, and a user's decoder given as module:function (issue 14's acceptance)."""
    broker = Broker(tmp_path / "broker").start()
    data = centerface_config(tmp_path, FACES)
    data["model"]["detection"]["decoder"] = decoder
    data["device"] = {"id": DEVICE}
    data["source"].update(loop=True, fps=5.0)
    data["mqtt"] = {"enabled": True, "host": "127.0.0.1", "port": broker.port}
    data["schedules"] = {"telemetry_s": 1.0, "benchmark_s": 0.0, "check_s": 2.0}
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    reports: List[Dict[str, Any]] = []
    client = collect(broker.port, f"edge-agent/{DEVICE}/report/accuracy", reports)
    log = tmp_path / "agent.log"
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=str(REPO),
        )
    try:
        deadline = time.monotonic() + 180.0
        while len(reports) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert len(reports) >= 2, log.read_text()[-3000:]
    finally:
        proc.terminate()
        proc.wait(30)
        client.loop_stop()
        client.disconnect()
        broker.stop()
    body = reports[-1]  # the envelope's fields, then the accuracy report's
    assert body["device_id"] == DEVICE and body["schema"].startswith("edge-agent/")
    face = body["per_class"]["face"]
    assert body["task"] == "detection" and body["matrix_labels"] == ["face", "background"]
    assert body["labeled_boxes"] == 25 and face["support"] == 25
    assert face["recall"] >= 0.8 and face["tp"] + face["fn"] == 25 and face["ap50"] is not None
    assert body["engine"]["precision"] == "fp32"
    assert proc.returncode == 0
