"""Acceptance (issue 13): the real daemon (``python -m agent run``) with a real mosquitto, three
sources into one ONet engine at batch 3: the demo's faces, its non-faces, and an RTSP source
whose reads stall (a server that accepts the connection and never answers). Results arrive per
source on ``<prefix>/<device>/results/<source_id>`` with that source's labels; the stalled source
is reported in telemetry and re-opened while the others keep their rate; a reload to INT8 swaps
the engine at batch 3 within daemon.max_swap_gap_ms."""

from __future__ import annotations

import signal
import socket
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import yaml

from tests.faults.daemon_proc import DEVICE, AgentProcess, stop_all, write_config
from tests.mqtt.brokers import Broker
from tests.mqtt.conftest import Subscriber

FPS = 8.0  # each live source's rate
Message = Tuple[str, Dict[str, Any]]


@pytest.fixture
def silent_rtsp() -> Iterator[str]:
    """rtsp:// on a socket that accepts connections (the kernel's backlog) and never answers."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield f"rtsp://127.0.0.1:{server.getsockname()[1]}/stream"
    server.close()


def multisource_config(work: Path, demo_dir: Path, port: int, rtsp: str, precision: str) -> Path:
    live = {"kind": "images", "loop": True, "fps": FPS}
    config = write_config(
        work,
        demo_dir,
        port,
        precision=precision,
        batching={"max_wait_ms": 20.0},
        schedules={"telemetry_s": 1.0, "benchmark_s": 0.0, "check_s": 0.0},
        calibration={"frames": 60, "min_spacing_s": 0.0},
        sources=[
            dict(live, id="faces", uri=str(demo_dir / "spot_labels" / "face")),
            dict(live, id="others", uri=str(demo_dir / "spot_labels" / "non_face")),
            {"id": "stuck", "kind": "rtsp", "uri": rtsp, "read_timeout_s": 1.0, "reopen_backoff_s": [0.2, 0.5]},
        ],
    )
    data = yaml.safe_load(config.read_text())
    del data["source"]  # the three sources replace the demo's one
    data["model"]["input"]["batch"] = 3
    data["accuracy"]["spot_labels"] = str(demo_dir / "spot_labels")  # the INT8 gate's labeled set
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


def drain(sub: Subscriber, seconds: float) -> List[Message]:
    return sub.collect(100000, seconds)


def by_kind(messages: List[Message], suffix: str) -> List[Dict[str, Any]]:
    return [p for t, p in messages if t.endswith(suffix)]


def test_three_sources_one_batched_engine_a_stalled_source_and_a_swap_to_int8(tmp_path, demo_dir, silent_rtsp):
    broker = Broker(tmp_path / "broker").start()
    sub = Subscriber(broker.port, f"edge-agent/{DEVICE}/#")
    time.sleep(0.3)
    config = multisource_config(tmp_path, demo_dir, broker.port, silent_rtsp, "fp32")
    try:
        agent = AgentProcess(config)
        first = sub.collect(1, 120.0, lambda t, p: "/results/" in t)
        assert first, agent.log[-3000:]
        window_s = 6.0
        seen = drain(sub, window_s)

        results: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
        for topic, payload in seen:
            if "/results/" in topic:
                results[topic.rsplit("/", 1)[1]].append(payload)
        assert set(results) == {"faces", "others"}, list(results)  # nothing from the stalled source
        for source, wanted in (("faces", "face"), ("others", "non_face")):
            payloads = results[source]
            assert all(p["source"] == source and p["precision"] == "fp32" for p in payloads)
            labels = Counter(p["top"][0]["label"] for p in payloads if p.get("top"))
            assert labels.most_common(1)[0][0] == wanted, (source, labels)
            assert len(payloads) >= 0.6 * FPS * window_s, (source, len(payloads))  # its rate, despite the stall

        telemetry = by_kind(seen, "/telemetry")[-1]
        per_source = {s["id"]: s for s in telemetry["sources"]}
        assert list(per_source) == ["faces", "others", "stuck"]
        stuck = per_source["stuck"]
        assert stuck["frames_read"] == 0 and stuck["fps"] is None and stuck["stalls"] >= 2, stuck
        assert stuck["reopens"] >= 2 and "no frame within source.read_timeout_s=1" in stuck["last_error"], stuck
        assert per_source["faces"]["fps"] >= 0.6 * FPS and per_source["faces"]["failed"] is False
        lost = [e for e in by_kind(seen, "/event") if e["event"] == "camera_lost"]
        assert any(e["details"]["id"] == "stuck" for e in lost), lost

        data = yaml.safe_load(config.read_text())
        data["precision"] = "int8"
        config.write_text(yaml.safe_dump(data, sort_keys=False))
        agent.proc.send_signal(signal.SIGHUP)
        swapped = sub.collect(
            1, 240.0, lambda t, p: t.endswith("/event") and p.get("event") in ("engine_swapped", "build_failed")
        )
        story = [line for line in agent.log.splitlines() if "capture stuck" not in line]
        assert swapped and swapped[0][1]["event"] == "engine_swapped", (swapped[0][1]["message"], story[-8:])
        details = swapped[0][1]["details"]
        assert details["within_bound"] and details["gap_ms"] <= details["max_swap_gap_ms"], details
        after = sub.collect(30, 30.0, lambda t, p: "/results/" in t and p.get("precision") == "int8")
        assert {p["source"] for _, p in after} == {"faces", "others"}, after
        assert agent.alive()
    finally:
        stop_all()
        sub.close()
        broker.stop()
