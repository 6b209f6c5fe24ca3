"""Envelope, timestamps, topics and the restart-proof sequence number."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.mqtt.messages import SequenceFile, Topics, envelope, parse_timestamp, split_topic, utc_timestamp


def test_envelope_fields_come_first_and_the_schema_names_kind_and_major():
    payload = envelope("build", "dev1", 7, {"precision": "int8"}, epoch=0.25)
    assert list(payload)[:4] == ["schema", "device_id", "seq", "ts"]
    assert payload == {
        "schema": "edge-agent/build/1",
        "device_id": "dev1",
        "seq": 7,
        "ts": "1970-01-01T00:00:00.250Z",
        "precision": "int8",
    }


def test_a_body_ts_becomes_the_envelope_ts_in_utc():
    assert envelope("accuracy", "d", 1, {"ts": "2026-01-31T12:00:00+02:00"})["ts"] == "2026-01-31T10:00:00.000Z"
    with pytest.raises(ValueError, match="ts"):
        envelope("accuracy", "d", 1, {"ts": "yesterday"})


@pytest.mark.parametrize("key", ["schema", "device_id", "seq"])
def test_a_body_cannot_overwrite_the_envelope(key):
    with pytest.raises(ValueError, match=key):
        envelope("event", "d", 1, {key: "x"})


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown payload kind"):
        envelope("gossip", "d", 1, {})


@pytest.mark.parametrize(
    "text, epoch",
    [
        ("1970-01-01T00:00:00Z", 0.0),
        ("1970-01-01T00:00:01.5z", 1.5),
        ("1970-01-01t01:00:00+01:00", 0.0),
        ("1970-01-01T00:00:00.123456789Z", 0.123456),
    ],
)
def test_parse_timestamp(text, epoch):
    assert parse_timestamp(text) == pytest.approx(epoch, abs=1e-6)


@pytest.mark.parametrize("text", ["", "1970-01-01", "1970-01-01T00:00:00", "noon", 12, None, "x" * 100])
def test_parse_timestamp_refuses(text):
    with pytest.raises(ValueError):
        parse_timestamp(text)


def test_round_trip_of_utc_timestamp():
    assert parse_timestamp(utc_timestamp(1234567890.125)) == 1234567890.125


def test_topics_and_split():
    topics = Topics("fleet", "cam-7")
    assert topics.status == "fleet/cam-7/status"
    assert topics.report("calibration") == "fleet/cam-7/report/calibration"
    assert topics.response("rebuild") == "fleet/cam-7/cmd/rebuild/response"
    assert topics.command_filter == "fleet/cam-7/cmd/+"
    assert split_topic("fleet", "fleet/cam-7/report/build") == ("cam-7", "report/build")
    assert split_topic("fleet", "other/cam-7/status") is None
    with pytest.raises(ValueError):
        topics.report("telemetry")


def test_sequence_survives_restarts_and_never_repeats(tmp_path):
    path = tmp_path / "seq"
    first = SequenceFile(path, block=10)
    a = [first.next() for _ in range(25)]
    second = SequenceFile(path, block=10)  # a restart (or a crash: the reservation is on disk)
    b = [second.next() for _ in range(3)]
    assert a == list(range(a[0], a[0] + 25))
    assert min(b) > max(a) and b == sorted(b)


def test_a_corrupt_sequence_file_is_moved_aside_and_named(tmp_path):
    path = tmp_path / "seq"
    path.write_text("twelve\n")
    seq = SequenceFile(path, clock=lambda: 1_800_000_000.0)
    assert seq.recovery is not None and "twelve" in seq.recovery["reason"]
    assert [p.name for p in tmp_path.glob("seq.corrupt-*")] == [Path(seq.recovery["moved_to"]).name]
    assert seq.next() == 1_800_000_000_000_000


def test_encode_turns_non_finite_numbers_into_null():
    import json

    from agent.mqtt.messages import encode

    body = {"fps": float("nan"), "nested": [{"w": float("inf")}, 1.5], "ok": 2}
    assert json.loads(encode(body)) == {"fps": None, "nested": [{"w": None}, 1.5], "ok": 2}
