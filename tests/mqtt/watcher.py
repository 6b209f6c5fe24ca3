"""A test subscriber to every message a device publishes (edge-agent/<device>/#), shared by the
daemon end-to-end and fault tests."""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable, Dict, List, Tuple

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

Match = Callable[[Dict[str, Any]], bool]


class Watcher:
    """Every message under edge-agent/<device>/#, as (topic suffix, JSON payload)."""

    def __init__(self, port: int, device: str) -> None:
        self.device = device
        self.messages: List[Tuple[str, Dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"watcher-{time.monotonic_ns()}")
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(f"edge-agent/{device}/#", qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self.lock:
            self.messages.append((message.topic.split(f"{self.device}/", 1)[1], json.loads(message.payload)))

    def find(self, topic: str, match: Match = lambda body: True) -> List[Dict[str, Any]]:
        with self.lock:
            return [body for t, body in self.messages if t == topic and match(body)]

    def wait(
        self, topic: str, match: Match = lambda body: True, timeout: float = 60.0, agent: Any = None
    ) -> Dict[str, Any]:
        """The newest matching message; fails at once when ``agent`` (with ``alive()`` and ``log``) has
        exited, else after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.find(topic, match)
            if found:
                return found[-1]
            if agent is not None and not agent.alive():
                raise AssertionError(
                    f"the daemon exited ({agent.proc.returncode}) before a {topic}:\n{agent.log[-3000:]}"
                )
            time.sleep(0.05)
        topics = sorted({t for t, _ in self.messages})
        tail = agent.log[-3000:] if agent is not None else ""
        raise AssertionError(f"no {topic} message matching within {timeout} s; got topics {topics}{tail}")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
