"""From an MQTT message to a store row, or the reason it is kept aside. Pure logic.

A device publishes under ``<prefix>/<device_id>/``: ``status``, ``telemetry``, ``event``,
``report/<kind>`` and ``cmd/<name>/response`` (agent.mqtt.messages.Topics). Each payload is a JSON
object whose envelope (``schema``, ``device_id``, ``seq``, ``ts``) must name a known schema
(agent.mqtt.messages.SCHEMA_MAJOR), match the topic's device and kind, and carry a sequence number
and an RFC 3339 time. Command requests (``cmd/<name>``, sent to devices) are not device messages
and are skipped, as are snapshots (``snapshot/<source>``: a JPEG the broker retains) and
per-frame ``result`` messages (``results/<source>``) unless they are to be stored.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple, Optional, Union

from agent.fleet.store import Message
from agent.mqtt.messages import REPORT_KINDS, SCHEMA_MAJOR, parse_timestamp, split_topic

RESULT_KIND = "result"


class Rejected(NamedTuple):
    """A message not accepted: kept aside with ``reason``."""

    reason: str


def topic_kind(rest: str) -> Optional[str]:
    """The kind a device topic carries ('report/build' -> 'build'); None where the topic does not say."""
    if rest in ("status", "telemetry", "event"):
        return rest
    head, _, tail = rest.partition("/")
    if head == "report" and tail in REPORT_KINDS:
        return tail
    parts = rest.split("/")  # cmd/<name>/response, or a sender's own reply topic cmd/<name>/response/<client id>
    if len(parts) in (3, 4) and parts[0] == "cmd" and parts[2] == "response" and all(parts):
        return "response"
    return None


def ingest(prefix: str, topic: str, payload: bytes, store_results: bool = False) -> Union[Message, Rejected, None]:
    """The row for one message; :class:`Rejected` with the reason; None for a message not kept (skipped)."""
    place = split_topic(prefix, topic)
    if place is None:
        return Rejected(f"topic {topic!r} is not under {prefix}/<device_id>/")
    device_id, rest = place
    parts = rest.split("/")
    if len(parts) == 2 and parts[0] in ("cmd", "snapshot"):
        return None  # a request to the device; a source's latest picture (JPEG, retained on the broker)
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return Rejected(f"payload is not UTF-8 JSON: {exc}")
    if not isinstance(data, dict):
        return Rejected(f"payload is a JSON {type(data).__name__}, not an object")
    kind = _schema_kind(data.get("schema"))
    if isinstance(kind, Rejected):
        return kind
    if kind == RESULT_KIND and not store_results:
        return None
    expected = topic_kind(rest)
    if expected is not None and expected != kind:
        return Rejected(f"topic {topic!r} carries {expected}, but the payload's schema is {data['schema']!r}")
    if expected is None and kind in ("status", "telemetry", "event", "response", *REPORT_KINDS):
        return Rejected(f"topic {topic!r} is not where a {kind} message goes")
    if data.get("device_id") != device_id:
        return Rejected(f"device_id {data.get('device_id')!r} differs from the topic's {device_id!r}")
    seq = data.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        return Rejected(f"seq must be an integer >= 0, got {seq!r}")
    try:
        ts = parse_timestamp(data.get("ts"))
    except ValueError as exc:
        return Rejected(f"ts: {exc}")
    return Message(device_id, seq, kind, topic, ts, data)


def _schema_kind(schema: Any) -> Union[str, Rejected]:
    """'edge-agent/telemetry/1' -> 'telemetry' when that kind and major are known."""
    if not isinstance(schema, str):
        return Rejected(f"no schema name (got {schema!r}); expected edge-agent/<kind>/<major>")
    parts = schema.split("/")
    if len(parts) != 3 or parts[0] != "edge-agent" or not parts[2].isdigit():
        return Rejected(f"schema {schema!r} is not edge-agent/<kind>/<major>")
    kind, major = parts[1], int(parts[2])
    if SCHEMA_MAJOR.get(kind) != major:
        known = ", ".join(f"{k}/{v}" for k, v in SCHEMA_MAJOR.items())
        return Rejected(f"unknown schema {schema!r}; known: {known}")
    return kind
