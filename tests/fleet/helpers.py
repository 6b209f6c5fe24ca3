"""Real publishers and collectors for the fleet tests: paho QoS 1 clients, the CLI as a subprocess."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

from agent.config.keys import schema_tree
from agent.config.sections import FleetConfig
from agent.mqtt.link import Settings, make_client
from agent.mqtt.messages import Topics, encode, envelope

REPO = Path(__file__).resolve().parents[2]
PREFIX = "edge-agent"


def fleet_config(**overrides: Any) -> FleetConfig:
    """The fleet section at its defaults, with ``overrides``."""

    def defaults(tree: Dict[str, Any]) -> Dict[str, Any]:
        return {k: (defaults(v) if isinstance(v, dict) else v.default) for k, v in tree.items()}

    node = defaults(schema_tree()["fleet"])
    node.update(overrides)
    return FleetConfig.from_node(node)


def telemetry(device: str, seq: int, **body: Any) -> Tuple[str, bytes]:
    return Topics(PREFIX, device).telemetry, encode(envelope("telemetry", device, seq, {"dropped": 0, **body}))


def publish_all(
    port: int, messages: Sequence[Tuple[str, bytes]], client_id: str = "test-pub", rate: float = 0.0
) -> None:
    """Publish at QoS 1 (``rate`` per second; 0 = as fast as it goes) and wait for every PUBACK."""
    client = make_client(Settings("127.0.0.1", port), client_id)
    client.max_inflight_messages_set(500)
    client.connect("127.0.0.1", port, 30)
    client.loop_start()
    began = time.monotonic()
    infos = []
    for i, (topic, payload) in enumerate(messages):
        if rate:
            time.sleep(max(0.0, began + i / rate - time.monotonic()))
        infos.append(client.publish(topic, payload, qos=1))
    for info in infos:
        info.wait_for_publish(30)
    client.disconnect()
    client.loop_stop()


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def collector_command(port: int, store_url: str, client_id: str, *extra: str) -> List[str]:
    return [
        sys.executable, "-m", "agent", "fleet", "collect", "--broker", f"mqtt://127.0.0.1:{port}",
        "--store", store_url, "--client-id", client_id, "--set", "fleet.group=tests", "--log-level", "info", *extra,
    ]  # fmt: skip


def start_collector(port: int, store_url: str, client_id: str, log: Path) -> "subprocess.Popen[str]":
    return subprocess.Popen(
        collector_command(port, store_url, client_id), cwd=REPO, stdout=subprocess.PIPE, stderr=log.open("a"), text=True
    )
