"""kill -9 of a process running the device link: the outbox keeps every report for the next run."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import List

import pytest

from agent.mqtt.outbox import Bounds, Outbox

from .conftest import unique_seqs

pytestmark = pytest.mark.mqtt

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("publisher_proc.py")


class Proc:
    def __init__(self, state: Path, port: int, count: int) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), str(state), str(port), str(count)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(REPO),
        )
        self.lines: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def until(self, marker: str, timeout: float) -> List[int]:
        """Seqs printed before ``marker``."""
        seqs = []
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"the publisher process did not print {marker!r} within {timeout} s") from None
            if line == marker:
                return seqs
            seqs.append(int(line))

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def test_kill_9_with_reports_in_the_outbox_loses_nothing(tmp_path, broker, subscribe):
    sub = subscribe("edge-agent/crashdev/#", extra=["-c", "-i", "crash-subscriber"])
    state = tmp_path / "state"
    broker.stop()  # reports stay in the outbox
    first = Proc(state, broker.port, 50)
    seqs_first = first.until("stored", 30)
    first.kill9()
    outbox = Outbox(state / "outbox.sqlite", Bounds(100000, 10**8, 1e6))
    assert outbox.count == 50
    outbox.close()

    broker.start()
    second = Proc(state, broker.port, 10)
    seqs_second = second.until("stored", 30)
    second.until("drained", 30)
    assert min(seqs_second) > max(seqs_first)  # seq is monotonic across the crash

    wanted = seqs_first + seqs_second
    assert unique_seqs(sub, wanted, 20, where=lambda t, p: t.endswith("/report/build")) == wanted

    second.kill9()  # an unclean end: the broker publishes the last will
    status = sub.collect(1, timeout=10, where=lambda t, p: t.endswith("/status") and p["state"] == "offline")
    assert status and status[0][1]["device_id"] == "crashdev"
