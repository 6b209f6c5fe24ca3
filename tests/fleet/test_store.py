"""The fleet store against SQLite and PostgreSQL alike: repeats, latest, series, counts, retention primitives."""

from __future__ import annotations

from typing import Any, Dict

import pytest

from agent.fleet.store import Message, Store, open_store


def _msg(device: str, seq: int, kind: str = "telemetry", ts: float = 1000.0, **body: Any) -> Message:
    payload: Dict[str, Any] = {"schema": f"edge-agent/{kind}/1", "device_id": device, "seq": seq, **body}
    return Message(device, seq, kind, f"edge-agent/{device}/{kind}", ts, payload)


def test_repeats_of_device_and_seq_are_ignored_and_counted(store: Store) -> None:
    rows = [_msg("cam1", seq, ts=1000.0 + seq, fps=float(seq)) for seq in range(1, 6)]
    assert store.insert(rows) == 5
    assert store.insert(rows[:2] + [_msg("cam2", 1)]) == 1  # cam2's seq 1 is another device's: new
    assert store.insert([rows[4], rows[4]]) == 0
    assert store.counts() == {"telemetry": 6, "quarantined": 0, "duplicates": 4}


def test_a_batch_larger_than_one_statement_is_stored_whole_with_its_repeats_dropped(store: Store) -> None:
    rows = [_msg(f"cam{i % 7}", i, ts=float(i)) for i in range(1000)]
    assert store.insert(rows + rows[::3]) == 1000  # repeats across statement boundaries
    assert store.counts()["duplicates"] == len(rows[::3])
    assert store.latest("cam6", "telemetry")["seq"] == max(i for i in range(1000) if i % 7 == 6)


def test_latest_and_devices_follow_the_newest_time_not_the_arrival_order(store: Store) -> None:
    store.insert([_msg("cam1", 7, ts=1007.0, fps=7.0)])
    store.insert([_msg("cam1", 3, ts=1003.0, fps=3.0)])  # late, older: not the latest
    store.insert(
        [_msg("cam1", 8, kind="status", ts=1001.0, state="online"), _msg("cam2", 1, kind="status", state="offline")]
    )
    assert store.latest("cam1", "telemetry")["fps"] == 7.0
    assert store.latest("cam1", "benchmark") is None
    devices = store.devices()
    assert [d["device_id"] for d in devices] == ["cam1", "cam2"]
    cam1, cam2 = devices
    assert (cam1["online"], cam1["state"], cam1["last_seen"]) == (True, "online", 1007.0)
    assert cam1["telemetry"]["fps"] == 7.0 and cam1["status"]["state"] == "online"
    assert (cam2["online"], cam2["state"]) == (False, "offline")


def test_series_is_oldest_first_within_bounds_and_limit_keeps_the_newest(store: Store) -> None:
    store.insert([_msg("cam1", seq, ts=1000.0 + seq, v=seq) for seq in range(1, 11)])
    store.insert([_msg("cam2", 1, ts=1005.0, v=99)])
    assert [p["v"] for _, p in store.series("cam1", "telemetry")] == list(range(1, 11))
    assert [ts for ts, _ in store.series("cam1", "telemetry", since=1003.0, until=1005.0)] == [1003.0, 1004.0, 1005.0]
    assert [p["v"] for _, p in store.series("cam1", "telemetry", limit=3)] == [8, 9, 10]
    assert store.series("cam1", "event") == []


def test_quarantine_keeps_the_bytes_and_the_reason(store: Store) -> None:
    store.quarantine("edge-agent/cam1/telemetry", b"\xff not json", "payload is not UTF-8 JSON")
    assert store.counts()["quarantined"] == 1
    (kept,) = store.quarantined()
    assert kept["payload"] == b"\xff not json" and kept["reason"] == "payload is not UTF-8 JSON"
    assert store.prune_quarantine(kept["received"] + 1) == 1 and store.counts()["quarantined"] == 0


def test_prune_and_thin_touch_only_old_rows_of_their_kind_and_keep_the_latest(store: Store) -> None:
    store.insert([_msg("cam1", seq, ts=float(seq)) for seq in range(0, 20)])  # ts 0..19
    store.insert([_msg("cam2", 100 + seq, ts=float(seq)) for seq in range(0, 20)])
    store.insert([_msg("cam1", 500, kind="event", ts=1.0)])
    # buckets of 5 s below ts 10: [0..4] and [5..9] keep one each per device
    assert store.thin("telemetry", 10.0, 5.0) == 2 * 8
    assert [ts for ts, _ in store.series("cam1", "telemetry")] == [4.0, 9.0] + [float(t) for t in range(10, 20)]
    assert store.prune("telemetry", 15.0) == 2 * 7
    assert store.counts() == {"telemetry": 10, "event": 1, "quarantined": 0, "duplicates": 0}
    assert store.prune("telemetry", 1e9) == 10
    assert store.latest("cam1", "telemetry")["seq"] == 19  # a quiet device still shows its last state
    with pytest.raises(ValueError, match="bucket_s"):
        store.thin("telemetry", 10.0, 0)


def test_migrate_is_idempotent_and_a_reopened_store_keeps_its_rows(store_url: str) -> None:
    first = open_store(store_url)
    assert first.schema_version() == 0
    first.migrate()
    first.migrate()
    assert first.schema_version() == 2
    first.insert([_msg("cam1", 1)])
    first.close()
    again = open_store(store_url)
    again.migrate()
    assert again.counts()["telemetry"] == 1
    again.close()


def test_open_store_names_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="names no file"):
        open_store("sqlite://")
