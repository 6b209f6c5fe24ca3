"""The demo's embedded MQTT 3.1.1 broker, driven by real paho clients."""

from __future__ import annotations

import queue
import socket
import time
from typing import Iterator, Tuple

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.demo.minibroker import MiniBroker, topic_matches


@pytest.fixture
def broker() -> Iterator[MiniBroker]:
    server = MiniBroker().start()
    yield server
    server.stop()


def client(
    port: int, name: str, inbox: "queue.Queue[Tuple[str, bytes, bool]]", will: Tuple[str, bytes] = ("", b"")
) -> paho.Client:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=paho.MQTTv311)
    c.on_message = lambda _c, _u, m: inbox.put((m.topic, m.payload, bool(m.retain)))
    if will[0]:
        c.will_set(will[0], will[1], qos=1, retain=True)
    c.connect("127.0.0.1", port, keepalive=5)
    c.loop_start()
    return c


def test_topic_matching():
    assert topic_matches("edge-agent/+/status", "edge-agent/dev1/status")
    assert topic_matches("edge-agent/dev1/#", "edge-agent/dev1/report/build")
    assert topic_matches("#", "a/b")
    assert not topic_matches("edge-agent/+/status", "edge-agent/dev1/report/status")
    assert not topic_matches("a/b", "a/b/c")


def test_publish_subscribe_retain_and_qos1(broker):
    inbox: "queue.Queue[Tuple[str, bytes, bool]]" = queue.Queue()
    publisher = client(broker.port, "pub", queue.Queue())
    publisher.publish("edge-agent/dev1/status", b"online", qos=1, retain=True).wait_for_publish(5)
    subscriber = client(broker.port, "sub", inbox)
    subscriber.subscribe("edge-agent/+/#", qos=1)
    assert inbox.get(timeout=5) == ("edge-agent/dev1/status", b"online", True)
    info = publisher.publish("edge-agent/dev1/telemetry", b'{"fps": 25}', qos=1)
    info.wait_for_publish(5)
    assert info.is_published()  # the broker answered PUBACK
    assert inbox.get(timeout=5) == ("edge-agent/dev1/telemetry", b'{"fps": 25}', False)
    subscriber.unsubscribe("edge-agent/+/#")
    time.sleep(0.2)
    publisher.publish("edge-agent/dev1/telemetry", b"x", qos=0)
    with pytest.raises(queue.Empty):
        inbox.get(timeout=0.5)
    for c in (publisher, subscriber):
        c.loop_stop()
        c.disconnect()


def test_last_will_on_a_lost_connection(broker):
    inbox: "queue.Queue[Tuple[str, bytes, bool]]" = queue.Queue()
    watcher = client(broker.port, "watcher", inbox)
    watcher.subscribe("edge-agent/+/status", qos=1)
    time.sleep(0.2)
    raw = socket.create_connection(("127.0.0.1", broker.port))
    will_topic, will_payload = b"edge-agent/dev2/status", b"offline"
    body = (
        b"\x00\x04MQTT\x04"
        + bytes([0x02 | 0x04 | 0x08 | 0x20])
        + b"\x00\x05"
        + b"\x00\x04dev2"
        + len(will_topic).to_bytes(2, "big")
        + will_topic
        + len(will_payload).to_bytes(2, "big")
        + will_payload
    )
    raw.sendall(bytes([0x10, len(body)]) + body)
    assert raw.recv(4) == b"\x20\x02\x00\x00"  # CONNACK accepted
    raw.close()  # gone without DISCONNECT
    assert inbox.get(timeout=5) == ("edge-agent/dev2/status", b"offline", False)
    watcher.loop_stop()
    watcher.disconnect()
