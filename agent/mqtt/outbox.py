"""Durable outbox: every report and event is written to SQLite (WAL) before it is published.

A message leaves the outbox only when the broker acknowledged it (PUBACK) or when the bounds
(count, bytes, age) evict it, oldest first; evictions are counted persistently (``dropped``) so
they can be reported. Rows come back in insertion order after reconnects and restarts.
Thread-safe: one connection guarded by a lock.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, List, NamedTuple

from agent.util.fileio import PathLike

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class Message(NamedTuple):
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created: float


class Bounds(NamedTuple):
    max_messages: int
    max_bytes: int
    max_age_s: float


class Outbox:
    """SQLite outbox at ``path`` (created with its folder when missing)."""

    def __init__(self, path: PathLike, bounds: Bounds, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.bounds = bounds
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL is durable against process crashes (kill -9); FULL adds power loss.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        count, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM messages").fetchone()
        self._count, self._bytes = int(count), int(size)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Store a message durably; return how many old messages the bounds evicted to make room."""
        if len(payload) > self.bounds.max_bytes:
            raise ValueError(f"message of {len(payload)} bytes exceeds mqtt.outbox.max_bytes ({self.bounds.max_bytes})")
        with self._lock:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT INTO messages (topic, payload, qos, retain, created) VALUES (?, ?, ?, ?, ?)",
                    (topic, sqlite3.Binary(payload), qos, int(retain), self._clock()),
                )
                self._count += 1
                self._bytes += len(payload)
                return self._evict_locked()

    def evict_expired(self) -> int:
        """Apply the bounds now (the age bound moves with time); return the number evicted."""
        with self._lock:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                return self._evict_locked()

    def _evict_locked(self) -> int:
        evicted = 0
        cutoff = self._clock() - self.bounds.max_age_s
        while self._count > 0:
            row = self._db.execute("SELECT id, LENGTH(payload), created FROM messages ORDER BY id LIMIT 1").fetchone()
            over = self._count > self.bounds.max_messages or self._bytes > self.bounds.max_bytes
            if row is None or not (over or row[2] < cutoff):
                break
            self._db.execute("DELETE FROM messages WHERE id = ?", (row[0],))
            self._count -= 1
            self._bytes -= row[1]
            evicted += 1
        if evicted:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('dropped', ?) ON CONFLICT(key) DO UPDATE SET value = value + ?",
                (evicted, evicted),
            )
        return evicted

    def pending(self, after_id: int = 0, limit: int = 100) -> List[Message]:
        """Up to ``limit`` stored messages with an id above ``after_id``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, qos, retain, created FROM messages WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [Message(r[0], r[1], bytes(r[2]), r[3], bool(r[4]), r[5]) for r in rows]

    def remove(self, ids: Iterable[int]) -> int:
        """Delete acknowledged messages (ids already gone are ignored); return how many went."""
        keys = [(i,) for i in ids]
        if not keys:
            return 0
        with self._lock:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                removed = 0
                for key in keys:
                    row = self._db.execute("SELECT LENGTH(payload) FROM messages WHERE id = ?", key).fetchone()
                    if row is not None:
                        self._db.execute("DELETE FROM messages WHERE id = ?", key)
                        removed += 1
                        self._bytes -= row[0]
                self._count -= removed
                return removed

    @property
    def count(self) -> int:
        return self._count

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def dropped(self) -> int:
        """Messages evicted by the bounds since the outbox file was created."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()
        return int(row[0]) if row else 0
