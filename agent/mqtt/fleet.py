"""The fleet operator's side: watch every device (``monitor``) and send signed commands (``send``).

:class:`FleetView` is the pure part (payloads in, table rows out); :func:`monitor` and
:func:`send` own a paho client with a client id of their own (never a device id, so they cannot
kick a device off the broker).
"""

from __future__ import annotations

import json
import queue
import sys
import time
import uuid
from typing import IO, Any, Dict, List, Mapping, Optional, Tuple, Union

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.mqtt.commands import TERMINAL, make_request
from agent.mqtt.keys import Signer
from agent.mqtt.link import Settings, connect_async, make_client
from agent.mqtt.messages import Topics, parse_timestamp, split_topic
from agent.util.errors import EXIT_GATE, EXIT_OK, EXIT_RUNTIME

COLUMNS = (
    ("device", "device"),
    ("state", "online"),
    ("engine", "engine"),
    ("precision", "prec"),
    ("fps", "fps"),
    ("sources", "sources"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
    ("power_w", "W"),
    ("mj_per_inference", "mJ/inf"),
    ("recall", "recall"),
    ("last_seen", "last seen"),
)


# Where each figure sits in telemetry or a benchmark report, with the factor to the column's
# unit (first found wins). Live fps comes from telemetry only: a benchmark's throughput is not
# the rate the device is serving at.
_FIGURES: Dict[str, Tuple[Tuple[str, float], ...]] = {
    "fps": (("pipeline.fps", 1.0),),
    "p50_ms": (("latency_ms.p50", 1.0), ("pipeline.latency_ms_p50", 1.0)),
    "p99_ms": (("latency_ms.p99", 1.0), ("pipeline.latency_ms_p99", 1.0)),
    "power_w": (("power.mean_w", 1.0), ("system.total_mw", 0.001)),
    "mj_per_inference": (("energy_mj_per_inference", 1.0),),
}


def _first(data: Mapping[str, Any], paths: Tuple[str, ...]) -> Any:
    """The value at the first dotted path present in ``data``."""
    for path in paths:
        node: Any = data
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            return node
    return None


def _figure(data: Mapping[str, Any], places: Tuple[Tuple[str, float], ...]) -> Optional[float]:
    """The first numeric value among ``places``, scaled to the column's unit."""
    for path, factor in places:
        value = _number(_first(data, (path,)))
        if value is not None:
            return value * factor
    return None


def sources_cell(sources: Any) -> Optional[str]:
    """'ok/total' of telemetry's per-source block: a source is ok while it delivers frames (it read
    some within the last seconds, so it has an fps) and has not given up; None without the block."""
    if not isinstance(sources, list) or not sources:
        return None
    ok = [s for s in sources if isinstance(s, dict) and s.get("fps") is not None and not s.get("failed")]
    return f"{len(ok)}/{len(sources)}"


def _number(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class FleetView:
    """The latest known state of each device, from the messages seen so far."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.devices: Dict[str, Dict[str, Any]] = {}

    def update(self, topic: str, payload: bytes) -> Optional[Dict[str, Any]]:
        """Take one message; return it as a JSON-lines record, or None when it is not a device's."""
        where = split_topic(self.prefix, topic)
        if where is None:
            return None
        device, kind = where
        try:
            data: Any = json.loads(payload.decode("utf-8")) if payload else None
        except (UnicodeDecodeError, ValueError):
            data = None
        row = self.devices.setdefault(device, {key: None for key, _ in COLUMNS})
        row["device"] = device
        if isinstance(data, dict):
            row["last_seen"] = data.get("ts") if isinstance(data.get("ts"), str) else row["last_seen"]
            self._apply(row, kind, data)
        return {
            "topic": topic,
            "device": device,
            "kind": kind,
            "payload": data if data is not None else payload.decode("utf-8", "replace"),
        }

    @staticmethod
    def _apply(row: Dict[str, Any], kind: str, data: Mapping[str, Any]) -> None:
        if kind == "status":
            row["state"] = data.get("state")
            engine = data.get("engine")
            if isinstance(engine, dict):
                row["engine"] = engine.get("name") or engine.get("backend")
                row["precision"] = engine.get("precision")
            elif isinstance(engine, str):
                row["engine"] = engine
        elif kind in ("telemetry", "report/benchmark"):
            updates = {column: _figure(data, places) for column, places in _FIGURES.items()}
            row.update({k: v for k, v in updates.items() if v is not None})
            if kind == "telemetry":
                row["sources"] = sources_cell(data.get("sources")) or row["sources"]
            if kind == "report/benchmark" and isinstance(data.get("precision"), str):
                row["precision"] = data["precision"]
        elif kind == "report/accuracy":
            status = _first(data, ("drift.status", "status"))
            row["recall"] = status if isinstance(status, str) else row["recall"]
        elif kind == "event" and data.get("event") == "drift":
            row["recall"] = data.get("severity")

    def rows(self) -> List[Dict[str, Any]]:
        return [self.devices[name] for name in sorted(self.devices)]


def render_table(rows: List[Dict[str, Any]]) -> str:
    """A fixed-width text table of the rows (``-`` for what is not known)."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
        return str(value)

    table = [[title for _, title in COLUMNS]] + [[cell(row.get(key)) for key, _ in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip() for line in table)


def _connect(
    settings: Settings,
    client_id: str,
    subscriptions: List[str],
    inbox: "queue.Queue[Tuple[str, bytes, Any]]",
    timeout: float,
) -> Any:
    """A started client subscribed to ``subscriptions``; messages land in ``inbox``."""
    client = make_client(settings, client_id)
    ready: "queue.Queue[Any]" = queue.Queue()

    def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            ready.put(f"the broker refused the connection: {reason}")
            return
        for topic in subscriptions:
            c.subscribe(topic, qos=1)
        ready.put(True)

    def on_subscribe(c: Any, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        ready.put("subscribed")

    def on_message(c: Any, userdata: Any, message: Any) -> None:
        inbox.put((message.topic, message.payload, getattr(message, "properties", None)))

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    connect_async(client, settings)
    client.loop_start()
    expected = len(subscriptions)
    deadline = time.monotonic() + timeout
    try:
        outcome = ready.get(timeout=max(0.0, deadline - time.monotonic()))
        if outcome is not True:
            raise ConnectionError(str(outcome))
        for _ in range(expected):
            ready.get(timeout=max(0.0, deadline - time.monotonic()))
    except queue.Empty:
        client.loop_stop()
        raise ConnectionError(f"no connection to {settings.host}:{settings.port} within {timeout:.0f} s") from None
    except ConnectionError:
        client.loop_stop()
        raise
    return client


def monitor(
    settings: Settings,
    out: IO[str],
    json_lines: bool = False,
    duration: Optional[float] = None,
    connect_timeout: float = 30.0,
) -> int:
    """Subscribe to every device under the prefix; print a live table (or JSON lines) until stopped."""
    view = FleetView(settings.prefix)
    inbox: "queue.Queue[Tuple[str, bytes, Any]]" = queue.Queue()
    topics = [f"{settings.prefix}/+/{leaf}" for leaf in ("status", "telemetry", "report/+", "event")]
    wait = min(connect_timeout, duration) if duration is not None else connect_timeout
    client = _connect(settings, f"edge-agent-monitor-{uuid.uuid4().hex[:12]}", topics, inbox, max(1.0, wait))
    deadline = time.monotonic() + duration if duration is not None else None
    last_draw = 0.0
    dirty = False
    try:
        while deadline is None or time.monotonic() < deadline:
            try:
                topic, payload, _ = inbox.get(timeout=0.2)
            except queue.Empty:
                topic = ""
            if topic:
                record = view.update(topic, payload)
                if record is not None and json_lines:
                    out.write(json.dumps(record, sort_keys=True) + "\n")
                    out.flush()
                dirty = dirty or record is not None
            if dirty and not json_lines and time.monotonic() - last_draw >= 1.0:
                clear = "\x1b[H\x1b[2J" if out.isatty() else ""
                out.write(clear + render_table(view.rows()) + "\n\n")
                out.flush()
                last_draw, dirty = time.monotonic(), False
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
        client.loop_stop()
    if not json_lines and view.devices:
        out.write(render_table(view.rows()) + "\n")
    return EXIT_OK


def exit_code(final: Optional[Mapping[str, Any]]) -> int:
    """0: ok; 3: ok but the result says a check or gate failed (``passed: false``); 1: anything else."""
    if final is None or final.get("status") != "ok":
        return EXIT_RUNTIME
    result = final.get("result")
    if isinstance(result, dict) and result.get("passed") is False:
        return EXIT_GATE
    return EXIT_OK


def describe(response: Mapping[str, Any]) -> str:
    """One human line for one response."""
    status = response.get("status")
    if status == "accepted":
        return f"accepted  job={response.get('job')}"
    if status == "progress":
        progress = response.get("progress") or {}
        fraction = progress.get("fraction")
        share = f"{fraction * 100:.0f}%  " if isinstance(fraction, (int, float)) else ""
        return f"progress  {share}{progress.get('message', '')}"
    if status == "ok":
        return "ok  " + json.dumps(response.get("result"), sort_keys=True)
    error = response.get("error") or {}
    return f"{status}  {error.get('code')}: {error.get('message')}"


def device_clock_offset(response: Mapping[str, Any], received: float) -> Optional[float]:
    """Seconds the device's clock is ahead of ours, from an ``expired`` refusal received at ``received``
    (our clock); None for any other answer."""
    error = response.get("error")
    if response.get("status") != "error" or not isinstance(error, dict) or error.get("code") != "expired":
        return None
    try:
        return parse_timestamp(error.get("device_time")) - received
    except ValueError:
        return None


def send(
    settings: Settings,
    device: str,
    command: str,
    args: Mapping[str, Any],
    key: Union[bytes, Signer],
    out: IO[str],
    wait_s: float = 60.0,
    json_lines: bool = False,
    device_clock: bool = False,
) -> int:
    """Sign and publish one request, print every response until the final one; return the exit code.

    With ``device_clock``, a request refused as ``expired`` is signed once more, under a new id, for
    the clock the device reported in that refusal (a device booted with a wrong clock)."""
    topics = Topics(settings.prefix, device)
    client_id = f"edge-agent-send-{uuid.uuid4().hex[:12]}"
    request = make_request(key, device, command, args)
    retried = False
    v5 = settings.protocol == "5"
    reply_topic = f"{topics.response(command)}/{client_id}" if v5 else topics.response(command)
    inbox: "queue.Queue[Tuple[str, bytes, Any]]" = queue.Queue()
    deadline = time.monotonic() + wait_s
    client = _connect(settings, client_id, [reply_topic], inbox, max(1.0, wait_s))
    final: Optional[Dict[str, Any]] = None

    def publish() -> None:
        properties = None
        if v5:
            properties = Properties(PacketTypes.PUBLISH)
            properties.ResponseTopic = reply_topic
            properties.CorrelationData = request["id"].encode("utf-8")
        client.publish(topics.command(command), json.dumps(request), qos=1, properties=properties)

    try:
        publish()
        while final is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                _, payload, props = inbox.get(timeout=remaining)
            except queue.Empty:
                break
            response = _matching(payload, props, request["id"])
            if response is None:
                continue
            offset = device_clock_offset(response, time.time()) if device_clock and not retried else None
            if offset is not None:
                retried = True
                sys.stderr.write(
                    f"note: {device}'s clock is {abs(offset):.0f} s {'ahead of' if offset > 0 else 'behind'} this "
                    "machine's; signing again for the device's clock\n"
                )
                request = make_request(key, device, command, args, epoch=time.time() + offset)
                publish()
                continue
            out.write((json.dumps(response, sort_keys=True) if json_lines else describe(response)) + "\n")
            out.flush()
            if response.get("status") in TERMINAL:
                final = response
    finally:
        client.disconnect()
        client.loop_stop()
    if final is None:
        sys.stderr.write(f"error: no final answer from {device} within {wait_s:g} s (request id {request['id']})\n")
    return exit_code(final)


def _matching(payload: bytes, props: Any, request_id: str) -> Optional[Dict[str, Any]]:
    """The response if it answers ``request_id`` (by correlation data or by its id field)."""
    try:
        response = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(response, dict):
        return None
    correlation = getattr(props, "CorrelationData", None)
    if correlation is not None and correlation != request_id.encode("utf-8"):
        return None
    if correlation is not None:
        return response if correlation == request_id.encode("utf-8") else None
    return response if response.get("id") == request_id else None
