"""The SQLite outbox: order, acknowledgement, bounds with counted eviction, reopening."""

from __future__ import annotations

import sqlite3

import pytest

from agent.mqtt.outbox import Bounds, Outbox

BIG = Bounds(1000, 10**6, 1e9)


def test_messages_come_back_in_order_and_leave_on_remove(tmp_path):
    box = Outbox(tmp_path / "o.sqlite", BIG)
    evicted = [box.add("t/a", f"m{i}".encode()) for i in range(5)]
    assert evicted == [0] * 5
    pending = box.pending()
    assert [m.payload for m in pending] == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    assert [m.payload for m in box.pending(after_id=pending[1].id, limit=2)] == [b"m2", b"m3"]
    assert box.remove([pending[0].id, pending[2].id, 99999]) == 2
    assert [m.payload for m in box.pending()] == [b"m1", b"m3", b"m4"]
    assert box.count == 3 and box.size_bytes == 6


def test_the_file_is_wal_and_survives_reopening(tmp_path):
    path = tmp_path / "o.sqlite"
    box = Outbox(path, BIG)
    box.add("t", b"kept", qos=1, retain=True)
    box.close()
    again = Outbox(path, BIG)
    [message] = again.pending()
    assert (message.topic, message.payload, message.qos, message.retain) == ("t", b"kept", 1, True)
    assert again.count == 1 and again.size_bytes == 4
    assert sqlite3.connect(str(path)).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_count_bound_evicts_oldest_first_and_counts(tmp_path):
    box = Outbox(tmp_path / "o.sqlite", Bounds(3, 10**6, 1e9))
    evicted = [box.add("t", bytes([i])) for i in range(5)]
    assert evicted == [0, 0, 0, 1, 1]
    assert [m.payload for m in box.pending()] == [b"\x02", b"\x03", b"\x04"]
    assert box.dropped == 2


def test_byte_bound(tmp_path):
    box = Outbox(tmp_path / "o.sqlite", Bounds(1000, 1024, 1e9))
    for _ in range(3):
        box.add("t", b"x" * 400)
    assert box.count == 2 and box.size_bytes == 800 and box.dropped == 1
    with pytest.raises(ValueError, match="max_bytes"):
        box.add("t", b"x" * 2000)


def test_age_bound(tmp_path):
    now = [1000.0]
    box = Outbox(tmp_path / "o.sqlite", Bounds(1000, 10**6, 60.0), clock=lambda: now[0])
    box.add("t", b"old")
    now[0] += 30
    box.add("t", b"new")
    now[0] += 40
    assert box.evict_expired() == 1
    assert [m.payload for m in box.pending()] == [b"new"]


def test_dropped_is_persistent(tmp_path):
    path = tmp_path / "o.sqlite"
    box = Outbox(path, Bounds(1, 10**6, 1e9))
    box.add("t", b"a")
    box.add("t", b"b")
    box.close()
    assert Outbox(path, BIG).dropped == 1
