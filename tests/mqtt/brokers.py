"""Real mosquitto brokers on free loopback ports, for tests and the outbox benchmark."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import List, Optional

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def mosquitto_pub(port: int, topic: str, payload: str, *options: str) -> None:
    """One QoS 1 message through the real mosquitto_pub client (``options``: e.g. -u, -P)."""
    command = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), *options, "-t", topic, "-m", payload, "-q", "1"]
    subprocess.run(command, check=True, timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class Broker:
    """One mosquitto process with persistence (so queued QoS 1 messages survive its restarts).

    ``tls`` is (ca, cert, key) for a listener that requires client certificates;
    ``password_file`` (made with mosquitto_passwd) turns anonymous access off.
    """

    def __init__(self, workdir: Path, tls: Optional[List[str]] = None, password_file: Optional[str] = None) -> None:
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: Optional[subprocess.Popen] = None
        lines = [
            f"user {getpass.getuser()}",  # as root, mosquitto would switch to 'mosquitto' and lose this folder
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous false" if password_file else "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.dir}/",
            f"log_dest file {self.dir / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "max_queued_messages 100000",
        ]
        if password_file:
            lines.append(f"password_file {password_file}")
        if tls:
            ca, cert, key = tls
            lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}", "require_certificate true"]
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self) -> "Broker":
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            wait_port(self.port)
        except TimeoutError as exc:
            self.stop()
            log = self.dir / "mosquitto.log"
            raise RuntimeError(f"mosquitto did not start: {log.read_text() if log.exists() else ''}") from exc
        return self

    def stop(self) -> None:
        """SIGTERM (mosquitto saves its persistence file), then wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None
