"""The real daemon (`python -m agent run`) on the demo config with a real mosquitto, for fault tests.

Its log is read through a pipe (a file would fall under the file size limit the disk-full test sets).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import yaml

DEVICE = "fault-device"
REPO = Path(__file__).resolve().parents[2]


def write_config(work: Path, demo_dir: Path, port: int, **sections: Dict[str, Any]) -> Path:
    """The demo configuration with its state under ``work/state``, MQTT on ``port``, fast telemetry."""
    data = yaml.safe_load((demo_dir / "demo.yaml").read_text())
    data["device"]["id"] = DEVICE
    data["source"].update(uri=str(demo_dir / "stream.avi"), loop=True, fps=30.0)
    data["accuracy"].update(live_sample_fraction=0.0)
    data["paths"]["state_dir"] = str(work / "state")
    data["mqtt"] = {"enabled": True, "host": "127.0.0.1", "port": port, "store_telemetry": True}
    data["commands"] = {"enabled": False}
    data["schedules"] = {"telemetry_s": 0.5, "benchmark_s": 0.0, "check_s": 0.0}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    config = work / "agent.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


class AgentProcess:
    """``python -m agent run -c config``; ``preexec`` runs in the child before exec (e.g. a limit).
    Every one started is in ``started`` until :func:`stop_all` (a test's ``finally``) stops it."""

    started: List["AgentProcess"] = []

    def __init__(self, config: Path, preexec: Optional[Callable[[], None]] = None) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            cwd=str(REPO),
            preexec_fn=preexec,
        )
        self.lines: List[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        AgentProcess.started.append(self)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.lines.append(raw.decode("utf-8", "replace"))

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(5)
        return self.proc.returncode


def stop_all() -> None:
    """Stop every daemon a test started, even when the test failed half-way."""
    while AgentProcess.started:
        AgentProcess.started.pop().stop(timeout=15.0)
