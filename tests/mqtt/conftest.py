"""Fixtures: a real mosquitto broker, mosquitto_sub as a peer, device links with their own state."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from agent.mqtt.commands import CommandServer
from agent.mqtt.link import DeviceLink, Settings
from agent.mqtt.messages import SequenceFile
from agent.mqtt.outbox import Bounds, Outbox
from agent.util.processes import stop_process

from .brokers import Broker

KEY = b"test-signing-key-0123456789"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    server = Broker(tmp_path / "broker").start()
    yield server
    server.stop()


class Subscriber:
    """mosquitto_sub as a real peer; lines are (topic, payload) pairs read by a thread."""

    def __init__(self, port: int, topic: str, extra: Optional[List[str]] = None) -> None:
        cmd = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-v", "-q", "1"] + (extra or [])
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines: "queue.Queue[Tuple[str, str]]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            topic, _, payload = line.rstrip("\n").partition(" ")
            self.lines.put((topic, payload))

    def collect(
        self, count: int, timeout: float, where: Callable[[str, Dict[str, Any]], bool] = lambda t, p: True
    ) -> List[Tuple[str, Dict[str, Any]]]:
        """The next ``count`` matching messages (JSON payloads); fewer if ``timeout`` runs out."""
        found: List[Tuple[str, Dict[str, Any]]] = []
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            try:
                topic, payload = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            data = json.loads(payload)
            if where(topic, data):
                found.append((topic, data))
        return found

    def close(self) -> None:
        stop_process(self.proc)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def subscribe(broker: Broker) -> Iterator[Callable[..., Subscriber]]:
    made: List[Subscriber] = []

    def make(topic: str = "edge-agent/#", extra: Optional[List[str]] = None, port: Optional[int] = None) -> Subscriber:
        sub = Subscriber(port or broker.port, topic, extra)
        made.append(sub)
        time.sleep(0.3)  # let it subscribe before anything is published
        return sub

    yield make
    for sub in made:
        sub.close()


@pytest.fixture
def make_link(tmp_path: Path, broker: Broker) -> Iterator[Callable[..., DeviceLink]]:
    """DeviceLink factory: state under tmp_path/<device>, stopped at teardown."""
    links: List[DeviceLink] = []

    def make(
        device: str = "dev1",
        handlers: Optional[Dict[str, Any]] = None,
        settings: Optional[Settings] = None,
        bounds: Optional[Bounds] = None,
        key: Optional[bytes] = KEY,
        **server: Any,
    ) -> DeviceLink:
        state = tmp_path / device
        outbox = Outbox(state / "outbox.sqlite", bounds or Bounds(100000, 10**8, 1e6))
        commands = CommandServer(device, key, handlers or {}, **server)
        link = DeviceLink(
            settings or Settings("127.0.0.1", broker.port, reconnect_min_s=0.1, reconnect_max_s=0.5),
            device,
            outbox,
            SequenceFile(state / "seq"),
            commands,
        )
        links.append(link)
        return link

    yield make
    for link in links:
        link.stop(timeout=2.0)
        link.outbox.close()


def unique_seqs(
    sub: Subscriber, wanted: List[int], timeout: float, where: Callable[[str, Dict[str, Any]], bool] = lambda t, p: True
) -> List[int]:
    """Seqs in arrival order, duplicates dropped, until every wanted one came (or ``timeout``)."""
    seen: List[int] = []
    deadline = time.monotonic() + timeout
    while not set(seen) >= set(wanted) and time.monotonic() < deadline:
        for _, payload in sub.collect(1, timeout=1, where=where):
            if payload["seq"] not in seen:
                seen.append(payload["seq"])
    return seen
