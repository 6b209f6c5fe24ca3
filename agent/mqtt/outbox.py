"""Durable outbox: every report and event is written to SQLite (WAL) before it is published.

A message leaves the outbox only when the broker acknowledged it (PUBACK) or when the bounds
(count, bytes, age) evict it, oldest first; evictions are counted persistently (``dropped``) so
they can be reported. Rows come back in insertion order after reconnects and restarts.
Thread-safe: one connection guarded by a lock.

A file SQLite cannot open or whose ``quick_check`` fails is moved aside (``*.corrupt-<time>``, with
its -wal and -shm) after reading every row SQLite can still read, from both ends of the table; a
new file takes those rows and ``recovery`` says what happened. A write that fails (disk full, I/O
error) raises :class:`StoreFailed` and leaves the counts true.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Tuple, TypeVar

from agent.util.fileio import PathLike, quarantine

log = logging.getLogger(__name__)
T = TypeVar("T")
_COLUMNS = "id, topic, payload, qos, retain, created"

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


class StoreFailed(Exception):
    """The outbox could not write (disk full, file size limit, I/O error); nothing was changed."""


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
        self.recovery: Optional[Dict[str, Any]] = None  # set when a damaged file was replaced
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            self._db = self._recover(str(exc))
        self._recount()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL is durable against process crashes (kill -9); FULL adds power loss.
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
            verdict = [row[0] for row in db.execute("PRAGMA quick_check")]
            if verdict != ["ok"]:
                raise sqlite3.DatabaseError(f"quick_check: {'; '.join(map(str, verdict[:3]))}")
            db.execute("SELECT COUNT(*), SUM(LENGTH(payload)) FROM messages").fetchone()
        except BaseException:
            db.close()
            raise
        return db

    def _recover(self, reason: str) -> sqlite3.Connection:
        """Move the damaged file aside, start a new one holding every row that could be read."""
        rows, dropped, complete = salvage(self.path)
        now = self._clock()
        moved = quarantine(self.path, now)
        for suffix in ("-wal", "-shm"):
            side = Path(f"{self.path}{suffix}")
            if side.exists():
                quarantine(side, now)
        db = self._open()
        with db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(f"INSERT INTO messages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", rows)
            db.execute("INSERT INTO meta (key, value) VALUES ('dropped', ?)", (dropped,))
        self.recovery = {
            "file": str(self.path),
            "moved_to": str(moved),
            "reason": reason,
            "recovered": len(rows),
            "complete": complete,
        }
        log.error(
            "outbox %s is damaged (%s): moved to %s; %d queued message(s) recovered%s",
            self.path,
            reason,
            moved.name,
            len(rows),
            "" if complete else ", the rows on damaged pages are lost",
        )
        return db

    def _recount(self) -> None:
        count, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM messages").fetchone()
        self._count, self._bytes = int(count), int(size)

    def _write(self, work: Callable[[], T]) -> T:
        """``work()`` in one write transaction; a failed write raises StoreFailed, counts re-read."""
        with self._lock:
            try:
                with self._db:
                    self._db.execute("BEGIN IMMEDIATE")
                    return work()
            except sqlite3.OperationalError as exc:
                self._recount()
                raise StoreFailed(f"outbox {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Store a message durably; return how many old messages the bounds evicted to make room."""
        if len(payload) > self.bounds.max_bytes:
            raise ValueError(f"message of {len(payload)} bytes exceeds mqtt.outbox.max_bytes ({self.bounds.max_bytes})")

        def insert() -> int:
            self._db.execute(
                "INSERT INTO messages (topic, payload, qos, retain, created) VALUES (?, ?, ?, ?, ?)",
                (topic, sqlite3.Binary(payload), qos, int(retain), self._clock()),
            )
            self._count += 1
            self._bytes += len(payload)
            return self._evict_locked()

        return self._write(insert)

    def evict_expired(self) -> int:
        """Apply the bounds now (the age bound moves with time); return the number evicted."""
        return self._write(self._evict_locked)

    def record_dropped(self, lost: int) -> None:
        """Count ``lost`` messages that never reached the outbox (they could not be stored)."""
        self._write(lambda: self._count_dropped(lost))

    def _count_dropped(self, lost: int) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES ('dropped', ?) ON CONFLICT(key) DO UPDATE SET value = value + ?",
            (lost, lost),
        )

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
            self._count_dropped(evicted)
        return evicted

    def pending(self, after_id: int = 0, limit: int = 100) -> List[Message]:
        """Up to ``limit`` stored messages with an id above ``after_id``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [Message(r[0], r[1], bytes(r[2]), r[3], bool(r[4]), r[5]) for r in rows]

    def remove(self, ids: Iterable[int]) -> int:
        """Delete acknowledged messages (ids already gone are ignored); return how many went."""
        keys = [(i,) for i in ids]
        if not keys:
            return 0

        def delete() -> int:
            removed = 0
            for key in keys:
                row = self._db.execute("SELECT LENGTH(payload) FROM messages WHERE id = ?", key).fetchone()
                if row is not None:
                    self._db.execute("DELETE FROM messages WHERE id = ?", key)
                    removed += 1
                    self._bytes -= row[0]
            self._count -= removed
            return removed

        return self._write(delete)

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


def salvage(path: PathLike) -> Tuple[List[Tuple[Any, ...]], int, bool]:
    """What SQLite can still read of a damaged outbox: its well-formed rows (read from the first
    row up to a damaged page, then from the last row down), the dropped count, and whether the
    whole table was read."""
    rows: Dict[int, Tuple[Any, ...]] = {}
    complete, dropped = False, 0
    try:
        db = sqlite3.connect(str(path))
    except sqlite3.Error:
        return [], 0, False
    try:
        for order in ("ASC", "DESC"):
            try:
                for row in db.execute(f"SELECT {_COLUMNS} FROM messages ORDER BY id {order}"):
                    if _well_formed(row):
                        rows[row[0]] = row
                complete = True
                break
            except sqlite3.Error:
                continue
        try:
            found = db.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()
            dropped = int(found[0]) if found and isinstance(found[0], int) else 0
        except sqlite3.Error:
            pass
    finally:
        db.close()
    return [rows[key] for key in sorted(rows)], dropped, complete


def _well_formed(row: Tuple[Any, ...]) -> bool:
    _, topic, payload, qos, retain, created = row
    return (
        isinstance(topic, str)
        and isinstance(payload, bytes)
        and qos in (0, 1, 2)
        and retain in (0, 1)
        and isinstance(created, (int, float))
    )
