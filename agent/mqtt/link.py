"""The device's MQTT link: one paho client, one publisher thread, a durable outbox, commands.

Threads: paho's network thread runs the callbacks, which only record what happened (acks,
connection changes) and hand command requests to the :class:`~agent.mqtt.commands.CommandServer`;
every ``publish``, ``subscribe`` and ``disconnect`` call happens in the single publisher thread.
Reports and events are stored in the outbox before anything is sent, leave it on PUBACK, and
are replayed in order after a reconnect (paho resends what it had in flight first, new rows
follow once those are acknowledged) and after a restart (every stored row, oldest first).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import ssl
import threading
import time
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, NamedTuple, Optional, Sequence, Tuple

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent import __version__
from agent.config.load import read_secret
from agent.config.sections import CommandsConfig, MqttConfig
from agent.mqtt.commands import CommandServer
from agent.mqtt.events import Event
from agent.mqtt.keys import load_verifier
from agent.mqtt.messages import REPORT_KINDS, SequenceFile, Topics, encode, envelope
from agent.mqtt.outbox import Bounds, Outbox, StoreFailed

log = logging.getLogger(__name__)

SESSION_TAKEN_OVER = 142  # MQTT 5 reason code: another client connected with our client id
FLAP_SECONDS = 5.0  # a connection the broker ends sooner than this counts as short ...
FLAP_COUNT = 3  # ... and this many in a row mean a duplicate client id (MQTT 3.1.1 has no reason code)
OUTBOX_FILE = "outbox.sqlite"
SEQ_FILE = "mqtt-seq"
_TRANSIENT_MAX = 1000  # responses and QoS 0 telemetry waiting for a connection
_LIVE_MAX = 256  # results and snapshots waiting for the publisher thread (kept apart: they never push out responses)


class Settings(NamedTuple):
    """Connection settings, from the ``mqtt`` config section (see :func:`settings_from_config`)."""

    host: str
    port: int
    prefix: str = "edge-agent"
    protocol: str = "5"
    keepalive_s: int = 30
    username: Optional[str] = None
    password: Optional[str] = None
    tls: bool = False
    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    qos: int = 1
    telemetry_qos: int = 0
    store_telemetry: bool = False
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    window: int = 100  # QoS 1 messages in flight at once


def settings_from_config(m: MqttConfig, host: Optional[str] = None, port: Optional[int] = None) -> Settings:
    """The connection settings of the ``mqtt`` section (``host``, ``port`` override it); reads the password file."""
    return Settings(
        host=host or m.host,
        port=port or m.port,
        prefix=m.prefix,
        protocol=m.protocol,
        keepalive_s=m.keepalive_s,
        username=m.username,
        password=read_secret("mqtt.password_file", m.password_file),
        tls=m.tls.enabled,
        ca_file=m.tls.ca_file,
        cert_file=m.tls.cert_file,
        key_file=m.tls.key_file,
        qos=m.qos,
        telemetry_qos=m.telemetry_qos,
        store_telemetry=m.store_telemetry,
        reconnect_min_s=m.reconnect_min_s,
        reconnect_max_s=m.reconnect_max_s,
    )


def make_client(settings: Settings, client_id: str) -> paho.Client:
    """A paho 2 client (callback API version 2) with protocol, TLS (verifying) and credentials set."""
    v5 = settings.protocol == "5"
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        clean_session=None if v5 else True,
    )
    if settings.tls:
        client.tls_set(
            ca_certs=settings.ca_file,
            certfile=settings.cert_file,
            keyfile=settings.key_file,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)
    client.reconnect_delay_set(settings.reconnect_min_s, settings.reconnect_max_s)  # type: ignore[arg-type]
    return client


def connect_async(client: paho.Client, settings: Settings) -> None:
    """Start connecting (paho's loop retries with the bounded backoff)."""
    if settings.protocol == "5":
        client.connect_async(settings.host, settings.port, settings.keepalive_s, clean_start=True)
    else:
        client.connect_async(settings.host, settings.port, settings.keepalive_s)


def parse_broker_url(url: str) -> Tuple[str, Optional[int], bool]:
    """'mqtt://host:1883' / 'mqtts://host' / 'host:port' -> (host, port or None, tls)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "mqtt", url
    if scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"--broker {url}: expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
    rest = rest.rstrip("/")
    host, colon, port_text = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
    if not host:
        raise ValueError(f"--broker {url}: no host")
    port: Optional[int] = None
    if colon:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"--broker {url}: the port must be 1-65535, got {port_text!r}")
        port = int(port_text)
    return host, port, scheme in ("mqtts", "ssl")


class _Send(NamedTuple):
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: Optional[Properties]


class DeviceLink:
    """Publishes this device's reports, events, telemetry and status; serves its commands.

    ``status_fields()`` is called for each status message and may add e.g. ``engine``.
    Public methods are thread-safe; ``publish_*`` return the payload's ``seq``.
    """

    def __init__(
        self,
        settings: Settings,
        device_id: str,
        outbox: Outbox,
        seq: SequenceFile,
        commands: Optional[CommandServer] = None,
        status_fields: Callable[[], Dict[str, Any]] = dict,
    ) -> None:
        self.settings = settings
        self.device_id = device_id
        self.topics = Topics(settings.prefix, device_id)
        self.outbox = outbox
        self.seq = seq
        self.commands = commands
        self._status_fields = status_fields
        self._started = time.time()
        self.stats: Dict[str, int] = collections.Counter()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._store_lock = threading.Lock()
        self._acks: Deque[Tuple[int, bool]] = collections.deque()
        self._transient: Deque[_Send] = collections.deque()
        self._live: Deque[_Send] = collections.deque()
        self._result_topics: Dict[str, str] = {}  # source id -> its results topic
        self._connected = False
        self._connection_events: Deque[bool] = collections.deque()
        self._inflight: Dict[int, Optional[int]] = {}  # paho mid -> outbox row id (None: not stored)
        self._cursor = 0  # highest outbox row id handed to paho
        self._draining = False  # after a reconnect, paho resends its in-flight rows before new ones
        self._unreported_drops = 0
        self._unstored = 0  # messages that could not be stored (disk full), not yet announced
        self._store_error = ""
        self._last_expiry_check = self._last_drop_report = float("-inf")
        self._status_due = False
        self._stop_timeout = 5.0
        self._connected_at: Optional[float] = None
        self._short_sessions = 0  # connections in a row the broker ended within FLAP_SECONDS
        self._client = make_client(settings, device_id)
        self._client.max_inflight_messages_set(settings.window)
        self._client.suppress_exceptions = True
        self._client.on_connect = self._guard(self._on_connect)
        self._client.on_connect_fail = self._guard(self._on_connect_fail)
        self._client.on_disconnect = self._guard(self._on_disconnect)
        self._on_ack = self._guard(self._on_publish)  # set as on_publish while QoS 1 messages are in flight
        self._client.on_message = self._guard(self._on_message)
        self._thread = threading.Thread(target=self._publisher, name="mqtt-publisher", daemon=True)

    # ----- public API -----

    def start(self) -> None:
        self._set_will()  # first: the start-up will holds the run's lowest seq
        for what, recovery in (("outbox", self.outbox.recovery), ("sequence file", self.seq.recovery)):
            if recovery:
                self.publish_event(
                    Event.STATE_CORRUPT, "error", f"the {what} was damaged and recreated", dict(recovery, state=what)
                )
        connect_async(self._client, self.settings)
        self._client.loop_start()
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish the retained ``stopped`` status (waiting up to ``timeout``), disconnect, join."""
        self._stop_timeout = timeout
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout + 5.0)
        self._client.loop_stop()

    def publish_report(self, kind: str, body: Dict[str, Any]) -> int:
        """Store a report (benchmark, accuracy, build, calibration) for publishing; return its seq."""
        if kind not in REPORT_KINDS:
            raise ValueError(f"unknown report kind {kind!r}; known: {', '.join(REPORT_KINDS)}")
        return self._store(kind, self.topics.report(kind), body, self.settings.qos)

    def publish_event(self, event: Event, severity: str, message: str, details: Optional[Dict[str, Any]] = None) -> int:
        """Store an event (one of :class:`~agent.mqtt.events.Event`) for publishing; return its seq."""
        if severity not in ("info", "warning", "error"):
            raise ValueError(f"severity must be info, warning or error, got {severity!r}")
        body = {"event": Event(event).value, "severity": severity, "message": message, "details": details or {}}
        return self._store("event", self.topics.event, body, self.settings.qos)

    def publish_telemetry(self, body: Dict[str, Any]) -> int:
        """Telemetry, with the outbox state added; QoS and storage per mqtt.telemetry_qos / store_telemetry."""
        full = dict(body)
        full["outbox"] = {
            "messages": self.outbox.count,
            "bytes": self.outbox.size_bytes,
            "dropped": self.outbox.dropped,
        }
        full["outbox"]["unstored"] = self._unstored
        full["dropped"] = self.dropped_total()
        full["wills_numbered"] = self.stats["wills_numbered"]
        if self.settings.store_telemetry:
            return self._store("telemetry", self.topics.telemetry, full, self.settings.telemetry_qos)
        seq = self.seq.next()
        if not self._connected:
            self.stats["telemetry_skipped_offline"] += 1
            return seq
        payload = encode(envelope("telemetry", self.device_id, seq, full))
        self._enqueue(_Send(self.topics.telemetry, payload, self.settings.telemetry_qos, False, None))
        return seq

    def publish_results(
        self, results: Sequence[Tuple[str, Dict[str, Any]]], qos: int = 0, store: bool = False
    ) -> List[Optional[int]]:
        """Results (source id, body), each on ``results/<source_id>``; their seqs, None where dropped.

        ``store``: through the outbox like a report (kept during outages); else transient: never stored,
        dropped and counted (``results_offline``) while the link is down, and handed to the publisher
        thread together (one lock, one wake-up).
        """
        if store:
            return [self._store("result", self._results_topic(source), body, qos) for source, body in results]
        if not self._connected:
            self.stats["results_offline"] += len(results)
            return [None] * len(results)
        seqs: List[Optional[int]] = []
        sends = []
        for source, body in results:
            seq = self.seq.next()
            seqs.append(seq)
            payload = encode(envelope("result", self.device_id, seq, body))
            sends.append(_Send(self._results_topic(source), payload, qos, False, None))
        self._enqueue_live(sends)
        return seqs

    def _results_topic(self, source_id: str) -> str:
        topic = self._result_topics.get(source_id)
        if topic is None:
            topic = self._result_topics[source_id] = self.topics.results(source_id)
        return topic

    def publish_snapshot(self, source_id: str, jpeg: bytes) -> bool:
        """A JPEG on ``snapshot/<source_id>``, retained, QoS 0, never stored; False when dropped (offline)."""
        if not self._connected:
            self.stats["snapshots_offline"] += 1
            return False
        self._enqueue_live([_Send(self.topics.snapshot(source_id), jpeg, 0, True, None)])
        return True

    def update_status(self) -> None:
        """Publish the retained status again (call after the engine changed)."""
        self._status_due = True
        self._wake.set()

    @property
    def connected(self) -> bool:
        return self._connected

    def health(self) -> Dict[str, Any]:
        """Counters for telemetry and logs."""
        out: Dict[str, Any] = dict(self.stats)
        out.update(
            connected=self._connected,
            outbox_messages=self.outbox.count,
            outbox_bytes=self.outbox.size_bytes,
            dropped=self.dropped_total(),
        )
        return out

    def dropped_total(self) -> int:
        """Messages numbered and lost: evicted by the outbox bounds, or not stored (full disk).
        Read under the lock that moves the not-stored ones into the outbox's count, so none counts twice."""
        with self._lock:
            return self.outbox.dropped + self._unstored

    def wait_drained(self, timeout: float) -> bool:
        """Wait until the outbox is empty (everything acknowledged); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.outbox.count == 0:
                return True
            time.sleep(0.01)
        return self.outbox.count == 0

    # ----- producers (any thread) -----

    def _store(self, kind: str, topic: str, body: Dict[str, Any], qos: int) -> int:
        with self._store_lock:  # the outbox order is the seq order
            seq = self.seq.next()
            payload = encode(envelope(kind, self.device_id, seq, body))
            try:
                evicted = self.outbox.add(topic, payload, qos=qos)
            except ValueError as exc:  # larger than the whole outbox may hold: numbered, so counted as dropped
                self.stats["too_large"] += 1
                log.error("%s not published: %s", kind, exc)
                with self._lock:
                    try:
                        self.outbox.record_dropped(1)
                    except StoreFailed:  # disk full as well: announced with the others once space returns
                        self._unstored += 1
                return seq
            except StoreFailed as exc:  # disk full: counted, announced once a store succeeds again
                with self._lock:
                    if not self._unstored:
                        log.error("%s cannot be stored (%s); dropping what cannot be stored", kind, exc)
                    self._unstored += 1
                    self._store_error = str(exc)
                return seq
        if evicted:
            with self._lock:
                self._unreported_drops += evicted
            log.warning("outbox full: %d oldest message(s) dropped", evicted)
        self._wake.set()
        return seq

    def _enqueue(self, item: _Send) -> None:
        with self._lock:
            if len(self._transient) >= _TRANSIENT_MAX:
                self._transient.popleft()
                self.stats["transient_dropped"] += 1
            self._transient.append(item)
        self._wake.set()

    def _enqueue_live(self, items: Sequence[_Send]) -> None:
        """Queue live messages for the publisher thread; past _LIVE_MAX the oldest are dropped (counted)."""
        with self._lock:
            self._live.extend(items)
            excess = len(self._live) - _LIVE_MAX
            if excess > 0:
                for _ in range(excess):
                    self._live.popleft()
                self.stats["live_dropped"] += excess
        self._wake.set()

    def _reply(self, response_topic: str, correlation: Optional[bytes]) -> Callable[[Dict[str, Any]], None]:
        def reply(body: Dict[str, Any]) -> None:
            payload = encode(envelope("response", self.device_id, self.seq.next(), body))
            props = None
            if correlation is not None:
                props = Properties(PacketTypes.PUBLISH)
                props.CorrelationData = correlation
            self._enqueue(_Send(response_topic, payload, 1, False, props))

        return reply

    # ----- paho callbacks (network thread): record and wake, never publish -----

    def _guard(self, callback: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(callback)
        def guarded(*args: Any) -> None:
            try:
                callback(*args)
            except Exception:
                self.stats["callback_errors"] += 1
                log.exception("MQTT callback %s failed (the network loop goes on)", callback.__name__)

        return guarded

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            log.error("broker %s:%d refused the connection: %s", self.settings.host, self.settings.port, reason)
            self.stats["connect_refused"] += 1
            return
        log.info("connected to %s:%d as %s", self.settings.host, self.settings.port, self.device_id)
        self.stats["connects"] += 1
        self._connected_at = time.monotonic()
        self._connection_events.append(True)
        self._wake.set()

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self.stats["connect_failures"] += 1
        log.debug("could not reach %s:%d; retrying", self.settings.host, self.settings.port)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._connected = False
        self._connection_events.append(False)
        lasted = time.monotonic() - self._connected_at if self._connected_at is not None else None
        self._connected_at = None
        taken_over = getattr(reason, "value", None) == SESSION_TAKEN_OVER
        self._short_sessions = self._short_sessions + 1 if lasted is not None and lasted < FLAP_SECONDS else 0
        if taken_over or self._short_sessions >= FLAP_COUNT:
            # Another client with this id (or a broker that drops us at once): no hot reconnect loop.
            self.stats["taken_over"] += 1
            log.error(
                "the broker keeps dropping the connection right after connect (%s): two devices share one device.id "
                "%r? waiting %.0f s before reconnecting",
                reason,
                self.device_id,
                self.settings.reconnect_max_s,
            )
            client.reconnect_delay_set(self.settings.reconnect_max_s, self.settings.reconnect_max_s)
        elif not self._stop.is_set():
            log.warning("disconnected from the broker (%s); reconnecting", reason)
            client.reconnect_delay_set(self.settings.reconnect_min_s, self.settings.reconnect_max_s)
        self._set_will()
        self._wake.set()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        self._acks.append((mid, bool(getattr(reason, "is_failure", False))))
        self._wake.set()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        name = message.topic[len(self.topics.base) + len("/cmd/") :]
        props = getattr(message, "properties", None)
        response_topic = getattr(props, "ResponseTopic", None) or self.topics.response(name)
        correlation = getattr(props, "CorrelationData", None)
        reply = self._reply(response_topic, correlation)
        if self.commands is None:
            reply(
                {
                    "id": None,
                    "command": name,
                    "status": "error",
                    "error": {"code": "disabled", "message": "commands are disabled on this device"},
                }
            )
            return
        self.commands.handle(name, message.payload, reply)

    # ----- the publisher thread: the only caller of publish/subscribe/disconnect -----

    def _publisher(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self._housekeeping()
                self._step()
            except Exception:
                self.stats["publisher_errors"] += 1
                log.exception("MQTT publisher step failed; going on")
                time.sleep(0.1)
        self._shutdown()

    def _step(self) -> None:
        self._process_acks()
        while self._connection_events:
            up = self._connection_events.popleft()
            self._connected = up
            if up:
                self._client.subscribe(self.topics.command_filter, qos=1)
                self._publish_status("online")
                self._draining = any(row is not None for row in self._inflight.values())
        if not self._connected:
            with self._lock:  # live data is stale by the time a connection is back
                self.stats["live_dropped"] += len(self._live)
                self._live.clear()
            return
        if self._status_due:
            self._status_due = False
            self._publish_status("online")
        while True:
            with self._lock:
                item = self._transient.popleft() if self._transient else None
            if item is None:
                break
            self._send(item, None)
        with self._lock:  # the whole burst at once
            live = list(self._live)
            self._live.clear()
        for item in live:
            self._send(item, None)
        if self._draining:
            self._draining = any(row is not None for row in self._inflight.values())
            if self._draining:
                return
        room = self.settings.window - len(self._inflight)
        if room > 0:
            for message in self.outbox.pending(self._cursor, room):
                self._send(_Send(message.topic, message.payload, message.qos, message.retain, None), message.id)
                self._cursor = message.id

    def _send(self, item: _Send, row: Optional[int]) -> None:
        try:
            info = self._publish(item.topic, item.payload, item.qos, item.retain, item.properties)
        except ValueError as exc:  # e.g. a response topic with wildcards
            self.stats["publish_refused"] += 1
            log.warning("cannot publish on %r: %s", item.topic, exc)
            if row is not None:
                self.outbox.remove([row])
            return
        self.stats["published"] += 1
        if item.qos > 0:
            self._inflight[info.mid] = row
        elif row is not None:  # QoS 0 rows are done once handed to the socket
            with contextlib.suppress(StoreFailed):
                self.outbox.remove([row])

    def _publish(
        self, topic: str, payload: bytes, qos: int, retain: bool, properties: Optional[Properties] = None
    ) -> paho.MQTTMessageInfo:
        """paho's publish, listening for acknowledgements only while QoS 1 messages are in flight.

        With an ``on_publish`` callback set, paho's network thread builds a ReasonCode and a Properties
        object and calls it for every QoS 0 PUBLISH it writes (paho.mqtt.client.Client._packet_write,
        paho-mqtt 2.2), which at every frame's result costs more than the write itself; so the callback
        is set before a QoS 1 message goes out and removed once nothing is in flight (_process_acks).
        """
        if qos > 0 and self._client.on_publish is None:
            self._client.on_publish = self._on_ack
        return self._client.publish(topic, payload, qos=qos, retain=retain, properties=properties)

    def _process_acks(self) -> None:
        done = []
        while self._acks:
            mid, failed = self._acks.popleft()
            if mid not in self._inflight:
                continue
            row = self._inflight.pop(mid)
            if failed:
                self.stats["rejected_by_broker"] += 1
                log.warning("the broker refused message %s (PUBACK reason code); dropped", row)
            if row is not None:
                done.append(row)
        if not self._inflight and self._client.on_publish is not None:
            self._client.on_publish = None  # only this thread publishes: no QoS 1 message is on its way
        if done:
            self.stats["acknowledged"] += len(done)
            try:
                self.outbox.remove(done)
            except StoreFailed:  # disk full: the rows stay and go out again after a restart (at least once)
                self.stats["remove_failed"] += len(done)

    def _housekeeping(self) -> None:
        """Apply the age bound, and report evictions (as an event) at most once a second."""
        now = time.monotonic()
        if now - self._last_expiry_check >= 5.0:
            self._last_expiry_check = now
            with contextlib.suppress(StoreFailed):  # disk full: the age bound is applied next time
                evicted = self.outbox.evict_expired()
                with self._lock:
                    self._unreported_drops += evicted
        if self._unstored and now - self._last_drop_report >= 1.0:
            self._last_drop_report = now
            self._announce_unstored()
        if self._unreported_drops and now - self._last_drop_report >= 1.0:
            self._last_drop_report = now
            with self._lock:
                drops, self._unreported_drops = self._unreported_drops, 0
            self.publish_event(
                Event.OUTBOX_DROPPED,
                "warning",
                f"outbox bounds dropped {drops} oldest message(s)",
                {"dropped": drops, "dropped_total": self.outbox.dropped},
            )

    def _announce_unstored(self) -> None:
        """Once the disk takes writes again: count the messages lost meanwhile and say so."""
        with self._lock:  # one step, so dropped_total() never sees them in both counts
            lost, error = self._unstored, self._store_error
            try:
                self.outbox.record_dropped(lost)
            except StoreFailed:
                return  # still full
            self._unstored -= lost
        log.warning("storage is back: %d message(s) could not be stored and were dropped (%s)", lost, error)
        self.publish_event(
            Event.STORAGE_FULL,
            "error",
            f"{lost} message(s) could not be stored (disk full?) and were dropped",
            {"dropped": lost, "dropped_total": self.outbox.dropped, "error": error},
        )

    def _status_payload(self, state: str) -> bytes:
        body: Dict[str, Any] = {
            "state": state,
            "version": __version__,
            "engine": None,
            "uptime_s": round(time.time() - self._started, 3),
        }
        try:
            body.update(self._status_fields())
        except Exception:
            self.stats["callback_errors"] += 1
            log.exception("status_fields() failed; status sent without its fields")
        return encode(envelope("status", self.device_id, self.seq.next(), body))

    def _publish_status(self, state: str) -> Optional[int]:
        try:
            info = self._publish(self.topics.status, self._status_payload(state), 1, True)
        except ValueError as exc:
            log.warning("cannot publish the status: %s", exc)
            return None
        self._inflight[info.mid] = None
        return info.mid

    def _set_will(self) -> None:
        """Register the retained ``offline`` status the broker publishes if the connection drops.
        Its seq is numbered now, but the broker publishes it only when the connection ends without our
        DISCONNECT (a network drop; the mosquitto tested here also at its own shutdown) and discards it
        at our clean stop (MQTT 5.0, 3.14.4: a DISCONNECT with reason 0x00 discards the will unsent,
        [MQTT-3.14.4-3]). ``wills_numbered`` counts them, so numbered seqs = received + dropped +
        (wills_numbered - ``offline`` statuses received)."""
        self.stats["wills_numbered"] += 1
        self._client.will_set(self.topics.status, self._status_payload("offline"), qos=1, retain=True)

    def _shutdown(self) -> None:
        timeout = self._stop_timeout
        if self._connected:
            mid = self._publish_status("stopped")
            deadline = time.monotonic() + timeout
            while mid is not None and mid in self._inflight and time.monotonic() < deadline:
                self._wake.wait(0.05)
                self._wake.clear()
                self._process_acks()
        self._client.disconnect()


def open_link(
    mqtt: MqttConfig,
    device_id: str,
    state_dir: str,
    commands: Optional[CommandServer] = None,
    status_fields: Callable[[], Dict[str, Any]] = dict,
) -> DeviceLink:
    """The daemon's link from the ``mqtt`` section: outbox and sequence file under ``state_dir``."""
    state = Path(state_dir)
    bounds = Bounds(mqtt.outbox.max_messages, mqtt.outbox.max_bytes, mqtt.outbox.max_age_s)
    outbox = Outbox(state / OUTBOX_FILE, bounds)
    return DeviceLink(
        settings_from_config(mqtt), device_id, outbox, SequenceFile(state / SEQ_FILE), commands, status_fields
    )


def open_command_server(
    commands: CommandsConfig, device_id: str, handlers: Optional[Dict[str, Any]] = None
) -> CommandServer:
    """The command server configured by the ``commands`` section (disabled: every request is refused)."""
    return CommandServer(
        device_id,
        load_verifier("commands.key_file", commands.key_file) if commands.enabled and commands.key_file else None,
        handlers,
        max_age_s=commands.max_age_s,
        rate_limit_per_min=commands.rate_limit_per_min,
        history=commands.history_entries,
        history_bytes=commands.history_bytes,
        max_response_bytes=commands.max_response_bytes,
    )
