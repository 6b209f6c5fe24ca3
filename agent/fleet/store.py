"""The fleet store: every device message once, the latest of each kind, and what was kept aside.

SQLite by default (a path or ``sqlite:///path``: ``sqlite:///var/lib/x.db`` is ``/var/lib/x.db``),
PostgreSQL for a ``postgresql://`` URL (psycopg 3, the ``fleet`` extra). One :class:`Store` may be
used from several threads (a lock serialises its calls); several processes may share one store
(SQLite in WAL mode with a busy timeout; PostgreSQL as usual). A message is identified by
``(device_id, seq)``: a repeat is ignored and counted. The schema is versioned
(:mod:`agent.fleet.migrations`); :meth:`Store.migrate` brings a store up to date.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from agent.fleet import migrations

_PG_SCHEMES = ("postgresql://", "postgres://")
_SQLITE_SCHEME = "sqlite://"
_MIGRATE_LOCK = 1_700_017  # PostgreSQL advisory lock key: one collector migrates at a time
_ROWS_PER_STATEMENT = 128  # 7 values a row: under the 999 variables of SQLite before 3.32 (Ubuntu 20.04's 3.31)


class Message(NamedTuple):
    """One accepted device message: ``ts`` is its envelope time (epoch s), ``payload`` the whole JSON object."""

    device_id: str
    seq: int
    kind: str
    topic: str
    ts: float
    payload: Dict[str, Any]


def open_store(url: str) -> "Store":
    """The store at ``url`` (see the module docstring); not migrated: call :meth:`Store.migrate`."""
    if url.startswith(_PG_SCHEMES):
        try:
            import psycopg  # the optional `fleet` extra
        except ImportError:
            raise RuntimeError(
                f"fleet store {url.split('@')[-1]!r} is PostgreSQL, which needs psycopg: "
                "pip install 'edge-agent[fleet]'"
            ) from None
        return Store(psycopg.connect(url, autocommit=True), "postgresql")
    path = url[len(_SQLITE_SCHEME) :] if url.startswith(_SQLITE_SCHEME) else url
    if not path:
        raise ValueError(f"fleet store URL {url!r} names no file")
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")  # readers (the dashboard) never block the collector
    conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a process crash; not a power loss
    return Store(conn, "sqlite")


def _dumps(payload: Dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False, default=str)


class Store:
    """A migrated (or to-be-migrated) store on one database connection."""

    def __init__(self, conn: Any, dialect: str) -> None:
        self._conn = conn
        self.dialect = dialect
        self._lock = threading.RLock()

    # -- plumbing -------------------------------------------------------------------------------

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.dialect == "postgresql" else text

    def _run(self, text: str, params: Sequence[Any] = ()) -> List[Tuple[Any, ...]]:
        cur = self._conn.cursor()
        try:
            cur.execute(self._sql(text), tuple(params))
            return list(cur.fetchall()) if cur.description else []
        finally:
            cur.close()

    def _many(self, head: str, rows: Sequence[Sequence[Any]], tail: str) -> int:
        """``head VALUES (..), (..) tail`` in statements of up to _ROWS_PER_STATEMENT rows (one
        statement is several times faster than one per row, on PostgreSQL most); rows changed."""
        changed = 0
        cur = self._conn.cursor()
        try:
            for start in range(0, len(rows), _ROWS_PER_STATEMENT):
                chunk = rows[start : start + _ROWS_PER_STATEMENT]
                marks = ", ".join(["(" + ", ".join("?" * len(chunk[0])) + ")"] * len(chunk))
                cur.execute(self._sql(f"{head} VALUES {marks} {tail}"), [v for row in chunk for v in row])
                changed += max(int(cur.rowcount), 0)
            return changed
        finally:
            cur.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock:
            if self.dialect == "postgresql":
                with self._conn.transaction():
                    yield
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # -- schema ---------------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The schema version the store is at; 0 for an empty database."""
        with self._lock:
            self._run(migrations.VERSION_TABLE)
            rows = self._run("SELECT MAX(version) FROM schema_version")
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    def migrate(self) -> None:
        """Apply every migration the store lacks, each in its own transaction."""
        self.schema_version()  # makes the version table
        with self._transaction():
            if self.dialect == "postgresql":
                self._run("SELECT pg_advisory_xact_lock(?)", (_MIGRATE_LOCK,))
            current = self.schema_version()
            for version, statements in migrations.pending(current, self.dialect):
                for statement in statements:
                    self._run(statement)
                self._run("DELETE FROM schema_version")
                self._run("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- writing --------------------------------------------------------------------------------

    def insert(self, rows: Sequence[Message]) -> int:
        """Store ``rows`` in one transaction; the number newly stored (repeats are ignored and counted)."""
        if not rows:
            return 0
        received = time.time()
        # Sorted by key, so that concurrent collectors lock rows in one order (PostgreSQL would
        # otherwise find deadlocks between two batches upserting the same devices' latest rows).
        values = sorted((m.device_id, m.seq, m.kind, m.topic, m.ts, received, _dumps(m.payload)) for m in rows)
        newest: Dict[Tuple[str, str], Tuple[Any, ...]] = {}
        for row in values:
            key = (row[0], row[2])
            held = newest.get(key)
            if held is None or (row[4], row[1]) > (held[4], held[1]):
                newest[key] = row
        with self._transaction():
            stored = self._many(
                "INSERT INTO messages (device_id, seq, kind, topic, ts, received, payload)",
                values,
                "ON CONFLICT (device_id, seq) DO NOTHING",
            )
            self._many(  # one row per key: PostgreSQL refuses to update a row twice in one statement
                "INSERT INTO latest (device_id, kind, seq, ts, received, payload)",
                [(r[0], r[2], r[1], r[4], r[5], r[6]) for _, r in sorted(newest.items())],
                "ON CONFLICT (device_id, kind) DO UPDATE SET seq = excluded.seq, ts = excluded.ts,"
                " received = excluded.received, payload = excluded.payload"
                " WHERE excluded.ts > latest.ts OR (excluded.ts = latest.ts AND excluded.seq > latest.seq)",
            )
            if stored < len(values):
                self._run("UPDATE counters SET value = value + ? WHERE name = 'duplicates'", (len(values) - stored,))
        return stored

    def quarantine(self, topic: str, payload: bytes, reason: str) -> None:
        """Keep a message that was not accepted, with why."""
        with self._transaction():
            self._run(
                "INSERT INTO quarantine (received, topic, payload, reason) VALUES (?, ?, ?, ?)",
                (time.time(), topic, bytes(payload), reason),
            )

    def prune(self, kind: str, before: float) -> int:
        """Delete ``kind`` messages older than ``before`` (epoch s); how many went."""
        with self._transaction():
            return self._count_deleted("DELETE FROM messages WHERE kind = ? AND ts < ?", (kind, before))

    def prune_quarantine(self, before: float) -> int:
        """Delete quarantined messages received before ``before``; how many went."""
        with self._transaction():
            return self._count_deleted("DELETE FROM quarantine WHERE received < ?", (before,))

    def thin(self, kind: str, before: float, bucket_s: float) -> int:
        """Keep one ``kind`` message (the last stored) per device and ``bucket_s`` among those older than ``before``."""
        if bucket_s <= 0:
            raise ValueError(f"bucket_s must be > 0, got {bucket_s}")
        bucket = "CAST(ts / ? AS INTEGER)" if self.dialect == "sqlite" else "FLOOR(ts / ?)"
        with self._transaction():
            return self._count_deleted(
                "DELETE FROM messages WHERE kind = ? AND ts < ? AND id NOT IN ("
                f"SELECT MAX(id) FROM messages WHERE kind = ? AND ts < ? GROUP BY device_id, {bucket})",
                (kind, before, kind, before, bucket_s),
            )

    def _count_deleted(self, text: str, params: Sequence[Any]) -> int:
        cur = self._conn.cursor()
        try:
            cur.execute(self._sql(text), tuple(params))
            return max(int(cur.rowcount), 0)
        finally:
            cur.close()

    # -- reading --------------------------------------------------------------------------------

    def devices(self) -> List[Dict[str, Any]]:
        """Each device: ``device_id``, ``last_seen`` (its newest message time, epoch s), ``online``
        (its latest status says so), ``state`` (that status's state or None) and, per kind seen, the
        latest payload under the kind's name. Sorted by device id."""
        with self._lock:
            rows = self._run("SELECT device_id, kind, ts, payload FROM latest ORDER BY device_id, kind")
        out: Dict[str, Dict[str, Any]] = {}
        for device_id, kind, ts, payload in rows:
            entry = out.setdefault(device_id, {"device_id": device_id, "last_seen": ts, "online": False, "state": None})
            entry["last_seen"] = max(entry["last_seen"], ts)
            entry[kind] = json.loads(payload)
            if kind == "status":
                entry["state"] = entry[kind].get("state")
                entry["online"] = entry["state"] == "online"
        return list(out.values())

    def latest(self, device_id: str, kind: str) -> Optional[Dict[str, Any]]:
        """The newest payload of ``kind`` from ``device_id``, or None."""
        with self._lock:
            rows = self._run("SELECT payload FROM latest WHERE device_id = ? AND kind = ?", (device_id, kind))
        return json.loads(rows[0][0]) if rows else None

    def series(
        self,
        device_id: str,
        kind: str,
        since: Optional[float] = None,
        until: Optional[float] = None,
        limit: Optional[int] = None,
    ) -> List[Tuple[float, Dict[str, Any]]]:
        """(ts, payload) of ``kind`` from ``device_id`` in [since, until], oldest first; with ``limit``,
        the newest ``limit`` of them."""
        where = ["device_id = ?", "kind = ?"]
        params: List[Any] = [device_id, kind]
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        if until is not None:
            where.append("ts <= ?")
            params.append(until)
        text = f"SELECT ts, payload FROM messages WHERE {' AND '.join(where)} ORDER BY ts DESC, seq DESC"
        if limit is not None:
            text += " LIMIT ?"
            params.append(int(limit))
        with self._lock:
            rows = self._run(text, params)
        return [(float(ts), json.loads(payload)) for ts, payload in reversed(rows)]

    def counts(self) -> Dict[str, int]:
        """Rows per kind stored, plus ``quarantined`` and ``duplicates`` (repeats ignored so far)."""
        with self._lock:
            kinds = self._run("SELECT kind, COUNT(*) FROM messages GROUP BY kind")
            quarantined = self._run("SELECT COUNT(*) FROM quarantine")
            duplicates = self._run("SELECT value FROM counters WHERE name = 'duplicates'")
        out = {str(kind): int(n) for kind, n in kinds}
        out["quarantined"] = int(quarantined[0][0])
        out["duplicates"] = int(duplicates[0][0]) if duplicates else 0
        return out

    def quarantined(self, limit: int = 100) -> List[Dict[str, Any]]:
        """The newest messages kept aside: received, topic, payload (bytes), reason."""
        with self._lock:
            rows = self._run(
                "SELECT received, topic, payload, reason FROM quarantine ORDER BY id DESC LIMIT ?", (int(limit),)
            )
        return [{"received": r[0], "topic": r[1], "payload": bytes(r[2]), "reason": r[3]} for r in rows]
