"""ingest: real payloads from agent.mqtt.messages accepted, each kind of bad message kept aside with why."""

from __future__ import annotations

import json
from typing import Any, Dict

import pytest

from agent.fleet.ingest import Rejected, ingest, topic_kind
from agent.fleet.store import Message
from agent.mqtt.messages import Topics, encode, envelope, parse_timestamp

PREFIX = "edge-agent"
T = Topics(PREFIX, "cam1")


def _payload(kind: str, seq: int = 5, device: str = "cam1", **body: Any) -> Dict[str, Any]:
    return envelope(kind, device, seq, body, epoch=1_800_000_000.25)


@pytest.mark.parametrize(
    "topic,kind",
    [
        (T.status, "status"),
        (T.telemetry, "telemetry"),
        (T.event, "event"),
        (T.report("benchmark"), "benchmark"),
        (T.report("accuracy"), "accuracy"),
        (T.report("build"), "build"),
        (T.report("calibration"), "calibration"),
        (T.response("rebuild"), "response"),
        (T.response("rebuild") + "/edge-agent-send-6e49963c8815", "response"),  # `send`'s own reply topic
    ],
)
def test_every_device_kind_becomes_a_row(topic: str, kind: str) -> None:
    payload = _payload(kind, state="online")
    row = ingest(PREFIX, topic, encode(payload))
    assert row == Message("cam1", 5, kind, topic, 1_800_000_000.25, payload)
    assert topic_kind(topic[len(PREFIX) + len("/cam1/") :]) == kind


def test_command_requests_and_snapshots_are_skipped_not_kept_aside() -> None:
    assert ingest(PREFIX, T.command("rebuild"), b'{"id": "x"}') is None
    assert ingest(PREFIX, T.snapshot("cam"), b"\xff\xd8\xff\xe0 a JPEG") is None


def test_results_are_stored_only_when_configured() -> None:
    payload = encode(_payload("result", source="cam", detections=[]))
    assert ingest(PREFIX, T.results("cam"), payload) is None
    row = ingest(PREFIX, T.results("cam"), payload, store_results=True)
    assert isinstance(row, Message) and row.kind == "result" and row.topic == T.results("cam")
    misplaced = ingest(PREFIX, T.telemetry, payload, store_results=True)
    assert isinstance(misplaced, Rejected) and "carries telemetry" in misplaced.reason


@pytest.mark.parametrize(
    "topic,raw,reason",
    [
        ("other/cam1/telemetry", encode(_payload("telemetry")), "is not under edge-agent/<device_id>/"),
        (T.telemetry, b"\xff\xfe", "not UTF-8 JSON"),
        (T.telemetry, b"{truncated", "not UTF-8 JSON"),
        (T.telemetry, b"[1, 2]", "JSON list, not an object"),
        (T.telemetry, b'{"device_id": "cam1", "seq": 1}', "no schema name"),
        (T.telemetry, encode({**_payload("telemetry"), "schema": "edge-agent/telemetry/9"}), "unknown schema"),
        (T.telemetry, encode({**_payload("telemetry"), "schema": "edge-agent/weather/1"}), "unknown schema"),
        (
            T.telemetry,
            encode({**_payload("telemetry"), "schema": "something-else"}),
            "is not edge-agent/<kind>/<major>",
        ),
        (T.telemetry, encode(_payload("event")), "carries telemetry, but the payload's schema is 'edge-agent/event/1'"),
        ("edge-agent/cam1/misc", encode(_payload("telemetry")), "is not where a telemetry message goes"),
        (T.telemetry, encode(_payload("telemetry", device="cam2")), "differs from the topic's 'cam1'"),
        (T.telemetry, encode({**_payload("telemetry"), "seq": "5"}), "seq must be an integer"),
        (T.telemetry, encode({**_payload("telemetry"), "seq": True}), "seq must be an integer"),
        (T.telemetry, encode({**_payload("telemetry"), "ts": "yesterday"}), "ts: expected an RFC 3339 time"),
    ],
)
def test_bad_messages_are_rejected_naming_the_problem(topic: str, raw: bytes, reason: str) -> None:
    outcome = ingest(PREFIX, topic, raw)
    assert isinstance(outcome, Rejected), outcome
    assert reason in outcome.reason


def test_the_row_time_is_the_envelope_time() -> None:
    payload = _payload("telemetry")
    row = ingest(PREFIX, T.telemetry, json.dumps(payload).encode())
    assert isinstance(row, Message) and row.ts == parse_timestamp(payload["ts"])
