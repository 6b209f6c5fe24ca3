"""A minimal MQTT 3.1.1 broker for `edge-agent demo` on machines without mosquitto.

One thread per client on 127.0.0.1. Supports what the demo needs and nothing more: CONNECT,
PUBLISH at QoS 0 and 1 (PUBACK), retained messages, SUBSCRIBE / UNSUBSCRIBE with + and #
wildcards, PINGREQ, DISCONNECT and the last will. No persistence, no QoS 2, no authentication,
no MQTT 5: not for production (use mosquitto).
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from typing import Dict, List, Optional, Tuple

log = logging.getLogger(__name__)
CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = (
    1,
    2,
    3,
    4,
    8,
    9,
    10,
    11,
    12,
    13,
    14,
)


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT topic filter matching: '+' one level, '#' the rest."""
    want, have = pattern.split("/"), topic.split("/")
    for i, part in enumerate(want):
        if part == "#":
            return True
        if i >= len(have) or (part != "+" and part != have[i]):
            return False
    return len(want) == len(have)


def encode_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + encode_length(len(body)) + body


def utf8(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("!H", len(data)) + data


def read_utf8(body: bytes, at: int) -> Tuple[str, int]:
    (size,) = struct.unpack_from("!H", body, at)
    return body[at + 2 : at + 2 + size].decode("utf-8"), at + 2 + size


class _Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        self.subscriptions: Dict[str, int] = {}
        self.will: Optional[Tuple[str, bytes, int, bool]] = None
        self.next_id = 0

    def send(self, data: bytes) -> None:
        with self.lock:
            self.sock.sendall(data)

    def deliver(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        flags = (qos << 1) | int(retain)
        body = utf8(topic)
        if qos:
            self.next_id = self.next_id % 65535 + 1
            body += struct.pack("!H", self.next_id)
        self.send(packet(PUBLISH, flags, body + payload))


class MiniBroker:
    """``MiniBroker().start()``; ``port`` is a free loopback port; ``stop()`` closes everything."""

    def __init__(self, port: int = 0) -> None:
        self.server = socket.create_server(("127.0.0.1", port))
        self.port = int(self.server.getsockname()[1])
        self.clients: List[_Client] = []
        self.retained: Dict[str, Tuple[bytes, int]] = {}
        self.lock = threading.Lock()
        self.running = True

    def start(self) -> "MiniBroker":
        threading.Thread(target=self._accept, name="minibroker", daemon=True).start()
        return self

    def stop(self) -> None:
        self.running = False
        self.server.close()
        with self.lock:
            for client in self.clients:
                client.sock.close()

    def _accept(self) -> None:
        while self.running:
            try:
                sock, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(_Client(sock),), daemon=True).start()

    def _read_packet(self, sock: socket.socket) -> Optional[Tuple[int, int, bytes]]:
        head = sock.recv(1)
        if not head:
            return None
        length, shift = 0, 0
        while True:
            byte = sock.recv(1)
            if not byte:
                return None
            length |= (byte[0] & 0x7F) << shift
            shift += 7
            if not byte[0] & 0x80:
                break
        body = b""
        while len(body) < length:
            chunk = sock.recv(length - len(body))
            if not chunk:
                return None
            body += chunk
        return head[0] >> 4, head[0] & 0x0F, body

    def _serve(self, client: _Client) -> None:
        with self.lock:
            self.clients.append(client)
        clean = False
        try:
            while True:
                read = self._read_packet(client.sock)
                if read is None:
                    break
                kind, flags, body = read
                if kind == DISCONNECT:
                    clean = True
                    break
                self._handle(client, kind, flags, body)
        except (OSError, ValueError, struct.error, UnicodeDecodeError) as exc:
            log.debug("minibroker: client dropped: %s", exc)
        finally:
            with self.lock:
                if client in self.clients:
                    self.clients.remove(client)
            client.sock.close()
            if not clean and client.will is not None:
                self._publish(*client.will)

    def _handle(self, client: _Client, kind: int, flags: int, body: bytes) -> None:
        if kind == CONNECT:
            _, at = read_utf8(body, 0)  # protocol name
            connect_flags = body[at + 1]
            _, at = read_utf8(body, at + 4)  # client id
            if connect_flags & 0x04:
                topic, at = read_utf8(body, at)
                (size,) = struct.unpack_from("!H", body, at)
                client.will = (
                    topic,
                    body[at + 2 : at + 2 + size],
                    (connect_flags >> 3) & 3,
                    bool(connect_flags & 0x20),
                )
            client.send(packet(CONNACK, 0, b"\x00\x00"))
        elif kind == PUBLISH:
            qos, retain = (flags >> 1) & 3, bool(flags & 1)
            topic, at = read_utf8(body, 0)
            if qos:
                client.send(packet(PUBACK, 0, body[at : at + 2]))
                at += 2
            self._publish(topic, body[at:], qos, retain)
        elif kind == SUBSCRIBE:
            packet_id, at, granted, new = body[:2], 2, bytearray(), []
            while at < len(body):
                pattern, at = read_utf8(body, at)
                qos = min(body[at] & 3, 1)
                at += 1
                client.subscriptions[pattern] = qos
                granted.append(qos)
                new.append(pattern)
            client.send(packet(SUBACK, 0, packet_id + bytes(granted)))
            with self.lock:
                retained = list(self.retained.items())
            for topic, (payload, qos) in retained:
                if any(topic_matches(p, topic) for p in new):
                    client.deliver(
                        topic,
                        payload,
                        min(qos, max(client.subscriptions[p] for p in new if topic_matches(p, topic))),
                        True,
                    )
        elif kind == UNSUBSCRIBE:
            at = 2
            while at < len(body):
                pattern, at = read_utf8(body, at)
                client.subscriptions.pop(pattern, None)
            client.send(packet(UNSUBACK, 0, body[:2]))
        elif kind == PINGREQ:
            client.send(packet(PINGRESP, 0, b""))
        # PUBACK from subscribers needs nothing: delivery is not retried by this broker

    def _publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        with self.lock:
            if retain:
                if payload:
                    self.retained[topic] = (payload, qos)
                else:
                    self.retained.pop(topic, None)
            targets = [
                (c, max(q for p, q in c.subscriptions.items() if topic_matches(p, topic)))
                for c in self.clients
                if any(topic_matches(p, topic) for p in c.subscriptions)
            ]
        for client, sub_qos in targets:
            try:
                client.deliver(topic, payload, min(qos, sub_qos), False)
            except OSError:
                pass
