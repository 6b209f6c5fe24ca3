"""Cases 2 and 4 of issue 15: damaged state files, written by the real code, then damaged byte by byte.

Each damaged file is moved aside as ``*.corrupt-<time>``, what could be read is kept, and the file
is recreated; the daemon starts on such a state directory and announces each one (``state_corrupt``).
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest

from agent.accuracy import baselines
from agent.daemon.swap import EngineState
from agent.demo.sample import Mosquitto, find_mosquitto
from agent.mqtt.messages import SequenceFile
from agent.mqtt.outbox import Bounds, Outbox
from tests.faults.daemon_proc import DEVICE, AgentProcess, stop_all, write_config
from tests.mqtt.watcher import Watcher

BOUNDS = Bounds(10_000, 10_000_000, 1e9)
PAGE = 4096


def filled_outbox(path: Path, count: int = 300, size: int = 600) -> None:
    """A real outbox holding ``count`` queued events on the fault device's topic, checkpointed and closed."""
    box = Outbox(path, BOUNDS)
    for n in range(count):
        body = {"schema": "edge-agent/event/1", "device_id": DEVICE, "seq": n + 1, "queued": n, "pad": "x" * size}
        box.add(f"edge-agent/{DEVICE}/event", json.dumps(body).encode(), qos=1)
    box.close()


def damage(path: Path, offset: int, length: int, seed: int = 15) -> None:
    data = bytearray(path.read_bytes())
    data[offset : offset + length] = (
        random.Random(seed).randbytes(length) if hasattr(random, "randbytes") else os.urandom(length)
    )
    path.write_bytes(bytes(data))


def wait_until(condition, timeout: float, agent: AgentProcess) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline and agent.alive(), agent.log[-3000:]
        time.sleep(0.2)


def corrupt_files(path: Path):
    return sorted(p.name for p in path.parent.glob(f"{path.name}*.corrupt-*"))


def test_random_bytes_over_the_outbox_are_moved_aside_and_a_new_outbox_works(tmp_path):
    path = tmp_path / "outbox.sqlite"
    filled_outbox(path, 20)
    path.write_bytes(os.urandom(path.stat().st_size))
    box = Outbox(path, BOUNDS)
    assert box.recovery is not None and box.recovery["recovered"] == 0
    assert "not a database" in box.recovery["reason"]
    assert len(corrupt_files(path)) == 1 and box.count == 0
    box.add("t", b"after")
    assert [m.payload for m in box.pending()] == [b"after"]


def test_a_truncated_outbox_is_recovered_as_far_as_it_reads(tmp_path):
    path = tmp_path / "outbox.sqlite"
    filled_outbox(path, 300)
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(size // 2)
    box = Outbox(path, BOUNDS)
    assert box.recovery is not None, "a truncated outbox must be detected (quick_check)"
    assert box.recovery["moved_to"].startswith(str(path) + ".corrupt-")
    assert box.count == box.recovery["recovered"] < 300
    assert [json.loads(m.payload)["queued"] for m in box.pending(limit=1000)] == sorted(
        json.loads(m.payload)["queued"] for m in box.pending(limit=1000)
    )


def test_one_damaged_page_loses_only_the_rows_on_it(tmp_path):
    path = tmp_path / "outbox.sqlite"
    filled_outbox(path, 300)
    pages = path.stat().st_size // PAGE
    damage(path, (pages // 2) * PAGE + 8, 200)  # inside one leaf page of the messages table
    box = Outbox(path, BOUNDS)
    assert box.recovery is not None and not box.recovery["complete"]
    kept = [json.loads(m.payload)["queued"] for m in box.pending(limit=1000)]
    assert 250 < len(kept) < 300  # both sides of the damaged page survive, in order
    assert kept[0] == 0 and kept[-1] == 299 and kept == sorted(kept)
    assert box.count == len(kept)


@pytest.mark.parametrize("content", [b"", b"\xff\xfe garbage", b"twelve\n", b"-5\n", b"\x00" * 40])
def test_a_damaged_sequence_file_is_moved_aside_and_numbers_move_forward(tmp_path, content):
    path = tmp_path / "mqtt-seq"
    first = SequenceFile(path, block=10)
    used = [first.next() for _ in range(25)]
    path.write_bytes(content)
    second = SequenceFile(path, block=10)
    assert second.recovery is not None and len(corrupt_files(path)) == 1
    assert second.next() > max(used)
    assert int(path.read_text()) > max(used)  # a new, valid file


def test_garbled_engine_state_is_moved_aside_and_reported(tmp_path):
    state = EngineState(str(tmp_path))
    report = {"engine_path": str(tmp_path / "engines" / "abc.onnx"), "cache_key": "abc", "built_precision": "int8"}
    state.promote(report, "fp32")
    damage(state.path, 10, 30)
    assert state.read() == {}
    assert len(state.corrupt) == 1 and "current and previous" in state.corrupt[0]["lost"]
    assert len(corrupt_files(state.path)) == 1 and not state.path.exists()
    assert state.read() == {} and len(state.corrupt) == 1  # reported once


def test_a_truncated_baseline_is_moved_aside(tmp_path):
    record = {"engine": {"id": "abc"}, "per_class": {"face": {"recall": 1.0}}}
    first = baselines.save(str(tmp_path), record)
    baselines.save(str(tmp_path), record)
    path = baselines.path_of(str(tmp_path), 2)
    path.write_bytes(path.read_bytes()[:40])
    moved = baselines.set_aside_damaged(str(tmp_path))
    assert [Path(m["file"]).name for m in moved] == [path.name] and "unreadable" in moved[0]["reason"]
    assert baselines.versions(str(tmp_path)) == [1] and baselines.latest(str(tmp_path))["sha256"] == first["sha256"]
    assert baselines.save(str(tmp_path), record)["version"] == 3  # a set-aside version number is not reused


@pytest.mark.slow
@pytest.mark.mqtt
@pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed")
def test_the_daemon_starts_on_a_damaged_state_dir_quarantines_and_announces(tmp_path, demo_dir):
    broker = Mosquitto(str(find_mosquitto()), tmp_path / "broker").start()
    watcher = Watcher(broker.port, DEVICE)
    config = write_config(tmp_path, demo_dir, broker.port, accuracy={"spot_labels": str(demo_dir / "spot_labels")})
    state = tmp_path / "state"
    try:
        first = AgentProcess(config)
        watcher.wait("status", lambda b: b["state"] == "online" and b.get("serving"), timeout=120, agent=first)
        watcher.wait("telemetry", timeout=30, agent=first)
        wait_until(lambda: baselines.versions(str(state)) == [1], 120, first)
        assert first.stop() == 0, first.log[-3000:]
        assert baselines.versions(str(state)) == [1], first.log[-3000:]
        watcher.messages.clear()

        outbox = state / "outbox.sqlite"
        outbox.unlink()
        filled_outbox(outbox, 300)  # queued while the broker was away
        damage(outbox, (outbox.stat().st_size // PAGE // 2) * PAGE + 8, 200)
        (state / "mqtt-seq").write_bytes(b"\xff\xfe\x00garbage")
        damage(state / "daemon" / "engines.json", 5, 40)
        baseline = baselines.path_of(str(state), 1)
        baseline.write_bytes(baseline.read_bytes()[:50])

        second = AgentProcess(config)
        watcher.wait("status", lambda b: b["state"] == "online" and b.get("serving"), timeout=120, agent=second)
        announced = {}
        for name in ("outbox.sqlite", "mqtt-seq", "engines.json", baseline.name):
            event = watcher.wait(
                "event",
                lambda b, n=name: b.get("event") == "state_corrupt" and Path(b["details"]["file"]).name == n,
                agent=second,
            )
            announced[name] = event
            assert event["severity"] == "error" and ".corrupt-" in event["details"]["moved_to"]
        assert announced["outbox.sqlite"]["details"]["recovered"] > 250
        recovered = watcher.wait("event", lambda b: b.get("queued") == 299, agent=second)  # queued rows are delivered
        assert recovered["seq"] == 300
        telemetry = watcher.wait("telemetry", lambda b: b["pipeline"]["inferences"] > 0, agent=second)
        assert telemetry["seq"] > 1_000_000_000_000  # numbering moved past anything the lost file held
        assert second.alive(), second.log[-3000:]
        for name in ("outbox.sqlite", "mqtt-seq", "daemon/engines.json"):
            target = state / name
            assert target.exists() and corrupt_files(target), name
        wait_until(lambda: baselines.versions(str(state)) == [2], 120, second)  # recorded again, saying why
        assert baselines.load(str(state), 2)["reason"] == "replaces a damaged baseline"
        assert "damaged" in second.log and "unexpected failure" not in second.log
        assert second.stop() == 0, second.log[-3000:]
    finally:
        stop_all()
        watcher.close()
        broker.stop()
