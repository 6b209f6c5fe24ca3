"""Case 1 of issue 15: a full disk. The fault is a real file size limit (RLIMIT_FSIZE, no root needed):
past it every write fails with EFBIG (CPython ignores SIGXFSZ), SQLite reports it as a disk I/O error.

What cannot be stored is counted and dropped, the daemon goes on inferring, and once writes work
again the loss is counted as dropped and announced (``storage_full``).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import pytest

from agent.demo.sample import Mosquitto, find_mosquitto
from tests.faults.daemon_proc import DEVICE, AgentProcess, stop_all, write_config
from tests.mqtt.watcher import Watcher

LIMIT = 96 * 1024  # above SQLite's 32 KiB -shm file, far below what the WAL grows to

CHILD = r"""
import json, resource, sys
from agent.mqtt.messages import SequenceFile
from agent.mqtt.outbox import Bounds, Outbox, StoreFailed

folder = sys.argv[1]
box = Outbox(folder + "/outbox.sqlite", Bounds(10000, 10 ** 8, 1e9))
seq = SequenceFile(folder + "/mqtt-seq", block=5)
unlimited = resource.RLIM_INFINITY
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), unlimited))
stored = failed = 0
error = ""
for n in range(200):
    try:
        box.add("t", b"x" * 2000)
        stored += 1
    except StoreFailed as exc:
        failed += 1
        error = str(exc)
resource.setrlimit(resource.RLIMIT_FSIZE, (1, unlimited))  # not even the sequence file fits
numbers = [seq.next() for _ in range(30)]
full_count = box.count
resource.setrlimit(resource.RLIMIT_FSIZE, (unlimited, unlimited))  # space is back
numbers.append(seq.next())
box.add("t", b"after")
box.record_dropped(failed)
print(json.dumps(dict(stored=stored, failed=failed, error=error, full_count=full_count, count=box.count,
                      dropped=box.dropped, numbers=numbers, seq_file=int(open(folder + "/mqtt-seq").read()))))
"""


def test_outbox_and_sequence_file_go_on_past_a_file_size_limit(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), str(LIMIT)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert result["stored"] > 0 and result["failed"] > 0 and "disk I/O error" in result["error"]
    assert result["full_count"] == result["stored"]  # the counts stay true after failed writes
    assert result["count"] == result["stored"] + 1 and result["dropped"] == result["failed"]
    numbers = result["numbers"]
    assert numbers == list(range(numbers[0], numbers[0] + 31))  # numbering went on while the file could not be written
    assert result["seq_file"] > numbers[-1]  # and the reservation was written once it could be


@pytest.mark.slow
@pytest.mark.mqtt
@pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed")
def test_the_daemon_survives_a_full_disk_and_announces_what_was_dropped(tmp_path, demo_dir):
    broker = Mosquitto(str(find_mosquitto()), tmp_path / "broker").start()
    watcher = Watcher(broker.port, DEVICE)
    config = write_config(tmp_path, demo_dir, broker.port)
    try:
        first = AgentProcess(config)  # builds the engine and the state with room to spare
        watcher.wait("status", lambda b: b["state"] == "online" and b.get("serving"), timeout=120, agent=first)
        assert first.stop() == 0, first.log[-3000:]

        def limited() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, resource.RLIM_INFINITY))

        agent = AgentProcess(config, preexec=limited)
        before = watcher.wait("telemetry", lambda b: b["pipeline"]["inferences"] > 0, timeout=120, agent=agent)
        deadline = time.monotonic() + 60
        while "cannot be stored" not in agent.log:
            assert agent.alive() and time.monotonic() < deadline, agent.log[-3000:]
            time.sleep(0.2)
        time.sleep(3.0)  # a few seconds of a full disk
        assert agent.alive(), agent.log[-3000:]
        full_since = time.monotonic()
        resource.prlimit(agent.proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        event = watcher.wait("event", lambda b: b.get("event") == "storage_full", timeout=30, agent=agent)
        assert event["details"]["dropped"] > 0 and event["details"]["dropped_total"] >= event["details"]["dropped"]
        after = watcher.wait("telemetry", lambda b: b["seq"] > event["seq"], timeout=30, agent=agent)
        assert after["dropped"] >= event["details"]["dropped"]
        assert after["pipeline"]["inferences"] > before["pipeline"]["inferences"] + 30  # inference went on
        assert time.monotonic() - full_since < 30
        assert agent.stop() == 0, agent.log[-3000:]
        assert "Traceback" not in agent.log, agent.log[-3000:]
    finally:
        stop_all()
        watcher.close()
        broker.stop()
