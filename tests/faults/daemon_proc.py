"""The real daemon (`python -m agent run`) on the demo config with a real mosquitto, for fault tests.

Its log is read through a pipe (a file would fall under the file size limit the disk-full test sets).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import yaml

DEVICE = "fault-device"
REPO = Path(__file__).resolve().parents[2]


def write_config(work: Path, demo_dir: Path, port: int, **sections: Any) -> Path:
    """The demo configuration with its state under ``work/state``, MQTT on ``port``, fast telemetry;
    ``sections``: values merged into a section (a dict) or set as they are (e.g. ``precision="int8"``)."""
    data = yaml.safe_load((demo_dir / "demo.yaml").read_text())
    data["device"]["id"] = DEVICE
    data["source"].update(uri=str(demo_dir / "stream.avi"), loop=True, fps=30.0)
    data["accuracy"].update(live_sample_fraction=0.0)
    data["paths"]["state_dir"] = str(work / "state")
    data["mqtt"] = {"enabled": True, "host": "127.0.0.1", "port": port, "store_telemetry": True}
    data["commands"] = {"enabled": False}
    data["schedules"] = {"telemetry_s": 0.5, "benchmark_s": 0.0, "check_s": 0.0}
    for name, values in sections.items():
        if isinstance(values, dict):
            data.setdefault(name, {}).update(values)
        else:
            data[name] = values
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

    def wait_for_log(self, text: str, timeout: float) -> None:
        """Until ``text`` is in the log; fails (with the log's end) if the daemon exits or time runs out."""
        deadline = time.monotonic() + timeout
        while text not in self.log:
            assert self.alive() and time.monotonic() < deadline, f"no {text!r}: {self.log[-3000:]}"
            time.sleep(0.05)

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


def signing_key(work: Path) -> Path:
    """An HMAC command key file (mode 0600) for ``commands.key_file``."""
    key = work / "command.key"
    key.write_text("fault-signing-key-0123456789\n")
    key.chmod(0o600)
    return key


def send_command(config: Path, *command: str, wait: float = 60.0) -> "subprocess.Popen[str]":
    """``edge-agent send DEVICE command... --json`` started in the background; its stdout is the answers."""
    args = [sys.executable, "-m", "agent", "send", DEVICE, *command, "-c", str(config), "--json", "--wait", str(wait)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=str(REPO))


def answers_of(sender: "subprocess.Popen[str]", timeout: float) -> List[Dict[str, Any]]:
    """Every JSON answer ``send_command`` printed, once it ended (killed after ``timeout``)."""
    import json

    try:
        out, _ = sender.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        sender.kill()
        out, _ = sender.communicate()
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]
