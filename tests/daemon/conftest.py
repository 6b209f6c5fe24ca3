"""Daemon test helpers: a real datagram socket standing in for systemd, and real ONet pipelines."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List, Tuple

import pytest

from agent.build import engine as building
from agent.config.sections import Config
from agent.model.pipeline import Pipeline, make_decoder


class NotifyListener:
    """The receiving end of $NOTIFY_SOCKET, as systemd holds it."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address.replace("@", "\0", 1) if address.startswith("@") else address)
        self.messages: List[Tuple[float, str]] = []

    def collect(self, duration: float) -> List[Tuple[float, str]]:
        """Receive for ``duration`` seconds; every datagram with its arrival time."""
        end = time.monotonic() + duration
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return self.messages
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                return self.messages
            self.messages.append((time.monotonic(), data.decode()))

    def wait_for(self, text: str, timeout: float) -> bool:
        """Receive until a datagram containing ``text`` arrives (True) or ``timeout`` passes."""
        end = time.monotonic() + timeout
        seen = len(self.messages)
        while time.monotonic() < end:
            self.collect(min(0.2, max(0.0, end - time.monotonic())))
            if any(text in m for _, m in self.messages[seen:]):
                return True
            seen = len(self.messages)
        return False

    def read_in_background(self) -> None:
        """Keep receiving on a thread (as systemd does), until the socket is closed."""

        def run() -> None:
            while True:
                try:
                    self.sock.settimeout(None)
                    data = self.sock.recv(4096)
                except OSError:
                    return
                self.messages.append((time.monotonic(), data.decode()))

        threading.Thread(target=run, daemon=True).start()

    def seen(self, text: str, timeout: float) -> bool:
        """With a background reader: whether a datagram containing ``text`` arrives within ``timeout``."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(text in m for _, m in list(self.messages)):
                return True
            time.sleep(0.05)
        return False

    def lines(self, key: str) -> List[Tuple[float, str]]:
        return [(t, line) for t, m in self.messages for line in m.split("\n") if line.startswith(key + "=")]

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifyListener]:
    path = f"/tmp/ea-notify-{os.getpid()}-{time.monotonic_ns()}"
    listener = NotifyListener(path)
    yield listener
    listener.close()
    os.unlink(path)


@pytest.fixture
def make_pipeline() -> Callable[[Config, str], Tuple[Pipeline, dict]]:
    """A real ONNX Runtime pipeline (and its build report) for a configuration and precision."""

    def make(config: Config, precision: str = "fp32") -> Tuple[Pipeline, dict]:
        report = building.build(config, precision=precision)
        engine, model = building.load_built(config, report)
        return Pipeline(engine, model, make_decoder(config.model, model)), report.to_json()

    return make
