"""The store's schema, as numbered migrations for SQLite and PostgreSQL.

Each migration is a list of statements per dialect; :func:`pending` says which ones a store at a
given version still needs. Version 1 holds the messages and the quarantine; version 2 adds the
latest message of each (device, kind) and the counters, filled from what version 1 stored.
Statements use ``?`` placeholders only where a store fills them in (none here).
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

DIALECTS = ("sqlite", "postgresql")

# (version, {dialect: statements}); never edit a released entry, append a new one.
_BIGID = {"sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT", "postgresql": "BIGSERIAL PRIMARY KEY"}
_FLOAT = {"sqlite": "REAL", "postgresql": "DOUBLE PRECISION"}
_BLOB = {"sqlite": "BLOB", "postgresql": "BYTEA"}


def _v1(d: str) -> List[str]:
    return [
        f"""CREATE TABLE messages (
            id {_BIGID[d]},
            device_id TEXT NOT NULL,
            seq BIGINT NOT NULL,
            kind TEXT NOT NULL,
            topic TEXT NOT NULL,
            ts {_FLOAT[d]} NOT NULL,
            received {_FLOAT[d]} NOT NULL,
            payload TEXT NOT NULL,
            UNIQUE (device_id, seq))""",
        "CREATE INDEX messages_device_kind_ts ON messages (device_id, kind, ts)",
        "CREATE INDEX messages_kind_ts ON messages (kind, ts)",
        f"""CREATE TABLE quarantine (
            id {_BIGID[d]},
            received {_FLOAT[d]} NOT NULL,
            topic TEXT NOT NULL,
            payload {_BLOB[d]} NOT NULL,
            reason TEXT NOT NULL)""",
    ]


def _v2(d: str) -> List[str]:
    return [
        f"""CREATE TABLE latest (
            device_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            seq BIGINT NOT NULL,
            ts {_FLOAT[d]} NOT NULL,
            received {_FLOAT[d]} NOT NULL,
            payload TEXT NOT NULL,
            PRIMARY KEY (device_id, kind))""",
        # The newest row of each (device, kind); ties on ts go to the higher seq.
        """INSERT INTO latest (device_id, kind, seq, ts, received, payload)
            SELECT m.device_id, m.kind, m.seq, m.ts, m.received, m.payload FROM messages m
            WHERE NOT EXISTS (SELECT 1 FROM messages n WHERE n.device_id = m.device_id AND n.kind = m.kind
                AND (n.ts > m.ts OR (n.ts = m.ts AND n.seq > m.seq)))""",
        "CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
        "INSERT INTO counters (name, value) VALUES ('duplicates', 0)",
    ]


MIGRATIONS: Tuple[Tuple[int, Dict[str, List[str]]], ...] = tuple(
    (version, {d: make(d) for d in DIALECTS}) for version, make in ((1, _v1), (2, _v2))
)
LATEST = MIGRATIONS[-1][0]

# How the version itself is kept (not a migration: it exists before any).
VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"


def pending(current: int, dialect: str) -> List[Tuple[int, Sequence[str]]]:
    """The migrations after ``current``, oldest first, as (version, statements)."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown store dialect {dialect!r}; known: {', '.join(DIALECTS)}")
    if current > LATEST:
        raise ValueError(f"the store is at schema version {current}, newer than this edge-agent knows ({LATEST})")
    return [(version, steps[dialect]) for version, steps in MIGRATIONS if version > current]
