"""`edge-agent fleet collect`: every device message from the broker into the store, once.

One paho client (MQTT 5) subscribes to ``$share/<group>/<prefix>/+/#`` at QoS 1: collectors with
the same group split the messages between them (MQTT 5.0 section 4.8.2, shared subscriptions).
The session is persistent (Clean Start 0 and a Session Expiry Interval, section 3.1.2.11.2), so
the broker queues what arrives while a collector is stopped or killed. Messages are acknowledged
by hand (paho's ``manual_ack``) only after the transaction holding them has committed: a
collector killed at any point has its unacknowledged messages sent again (section 4.4) and the
store's ``(device_id, seq)`` key drops those it had already stored, so every message is kept
exactly once. Receive Maximum (section 3.1.2.11.3) is raised so a whole batch can be in flight.

Threads: paho's network thread only queues what arrives; :meth:`Collector.run`'s thread batches,
stores, quarantines, acknowledges and applies retention.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.config.sections import FleetConfig
from agent.fleet import retention
from agent.fleet.ingest import Rejected, ingest
from agent.fleet.store import Message, Store
from agent.mqtt.link import Settings, make_client

log = logging.getLogger(__name__)

RECEIVE_MAXIMUM_CAP = 65535  # the largest a two-byte integer property holds
STORE_RETRY_MAX_S = 5.0  # longest pause between attempts to store a batch


class Arrival(NamedTuple):
    topic: str
    payload: bytes
    mid: int
    qos: int


def default_client_id() -> str:
    return f"fleet-collector-{socket.gethostname()}"


def subscription(group: str, prefix: str) -> str:
    """'$share/<group>/<prefix>/+/#': every device topic, shared among the group's collectors."""
    return f"$share/{group}/{prefix}/+/#"


class Collector:
    """Moves messages from the broker into ``store``; :meth:`run` until ``stop`` is set."""

    def __init__(self, settings: Settings, fleet: FleetConfig, store: Store, client_id: Optional[str] = None) -> None:
        if settings.protocol != "5":
            raise ValueError("fleet collect needs MQTT 5 (shared subscriptions); set mqtt.protocol: '5'")
        self.settings = settings
        self.fleet = fleet
        self.store = store
        self.client_id = client_id or fleet.client_id or default_client_id()
        self.stats: Dict[str, int] = {
            "received": 0,
            "stored": 0,
            "duplicates": 0,
            "rejected": 0,
            "skipped": 0,
            "store_retries": 0,
        }
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # the broker granted the subscription (SUBACK) at least once
        self._ready: Optional[Callable[[str], None]] = None
        self._arrivals: "queue.Queue[Arrival]" = queue.Queue()
        self._client = make_client(settings, self.client_id)
        self._client.manual_ack_set(True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe

    # -- paho's thread --------------------------------------------------------------------------

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the collector %s: %s", self.client_id, reason)
            return
        topic = subscription(self.fleet.group, self.settings.prefix)
        client.subscribe(topic, qos=1)
        log.info("collector %s connected (session present: %s), subscribed to %s",
                 self.client_id, flags.session_present, topic)  # fmt: skip
        self.connected.set()

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        topic = subscription(self.fleet.group, self.settings.prefix)
        if any(reason.is_failure for reason in reasons):
            log.error("broker refused the subscription %s: %s", topic, ", ".join(map(str, reasons)))
            return
        if not self.subscribed.is_set() and self._ready is not None:
            self._ready(topic)
        self.subscribed.set()

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.connected.clear()
        log.log(logging.WARNING if reason.is_failure else logging.INFO, "collector %s disconnected: %s",
                self.client_id, reason)  # fmt: skip

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self._arrivals.put(Arrival(message.topic, bytes(message.payload), message.mid, message.qos))

    # -- the collector's thread -----------------------------------------------------------------

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.fleet.session_expiry_s
        props.ReceiveMaximum = min(RECEIVE_MAXIMUM_CAP, 2 * self.fleet.batch_max)
        return props

    def run(self, stop: threading.Event, ready: Optional[Callable[[str], None]] = None) -> None:
        """Collect until ``stop`` is set; then store what arrived, acknowledge it and disconnect.
        ``ready(topic)`` is called (on paho's thread) once the broker first grants the subscription."""
        self._ready = ready
        s = self.settings
        self._client.connect_async(
            s.host, s.port, s.keepalive_s, clean_start=False, properties=self._connect_properties()
        )
        self._client.loop_start()
        policy = self.fleet.retention
        next_retention = time.monotonic()
        try:
            while not stop.is_set():
                self._store(self._batch(stop), stop)
                if time.monotonic() >= next_retention:
                    removed = retention.apply(self.store, retention.plan(policy, time.time()))
                    if any(removed.values()):
                        log.info("retention removed %s", removed)
                    next_retention = time.monotonic() + policy.interval_s
            self._store(self._drain(), stop)  # stop is set: one attempt, else the broker sends them again
        finally:
            self._client.disconnect()
            self._client.loop_stop()

    def _batch(self, stop: threading.Event) -> List[Arrival]:
        """Up to batch_max arrivals: waits for the first (a short while, to see ``stop``), then
        takes what else comes within batch_wait_s."""
        try:
            first = self._arrivals.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.fleet.batch_wait_s
        while len(batch) < self.fleet.batch_max and not stop.is_set():
            left = deadline - time.monotonic()
            try:
                batch.append(self._arrivals.get(timeout=left) if left > 0 else self._arrivals.get_nowait())
            except queue.Empty:
                break
        return batch

    def _drain(self) -> List[Arrival]:
        out: List[Arrival] = []
        while True:
            try:
                out.append(self._arrivals.get_nowait())
            except queue.Empty:
                return out

    def _insert(self, rows: List[Message], stop: threading.Event) -> Optional[int]:
        """store.insert, tried again while it fails (a database restarting, a deadlock between two
        collectors' transactions); None when ``stop`` came first."""
        delay = 0.1
        while True:
            try:
                return self.store.insert(rows)
            except Exception as exc:  # the store's driver errors have no common base class
                log.error("storing %d messages failed (%s); trying again in %.1f s", len(rows), exc, delay)
                self.stats["store_retries"] += 1
            if stop.wait(delay):
                return None
            delay = min(2 * delay, STORE_RETRY_MAX_S)

    def _store(self, batch: List[Arrival], stop: threading.Event) -> None:
        """One transaction for the batch's rows, the rejects kept aside, then the acknowledgements."""
        if not batch:
            return
        rows: List[Message] = []
        for arrival in batch:
            outcome = ingest(self.settings.prefix, arrival.topic, arrival.payload, self.fleet.store_results)
            if isinstance(outcome, Rejected):
                self.store.quarantine(arrival.topic, arrival.payload, outcome.reason)
                self.stats["rejected"] += 1
                log.warning("kept aside a message on %s: %s", arrival.topic, outcome.reason)
            elif outcome is None:
                self.stats["skipped"] += 1
            else:
                rows.append(outcome)
        stored = self._insert(rows, stop)
        if stored is None:
            return  # stopping with the store failing: unacknowledged, the broker sends them again
        self.stats["received"] += len(batch)
        self.stats["stored"] += stored
        self.stats["duplicates"] += len(rows) - stored
        for arrival in batch:
            if arrival.qos > 0:
                self._client.ack(arrival.mid, arrival.qos)
