"""Migrations from an empty store and from version 1 (rows kept, the latest table filled from them)."""

from __future__ import annotations

import json

import pytest

from agent.fleet import migrations
from agent.fleet.store import open_store


def test_pending_lists_what_a_version_lacks_and_refuses_a_newer_store() -> None:
    assert [v for v, _ in migrations.pending(0, "sqlite")] == [1, 2]
    assert [v for v, _ in migrations.pending(1, "postgresql")] == [2]
    assert migrations.pending(migrations.LATEST, "sqlite") == []
    with pytest.raises(ValueError, match="newer than this edge-agent knows"):
        migrations.pending(migrations.LATEST + 1, "sqlite")
    with pytest.raises(ValueError, match="unknown store dialect"):
        migrations.pending(0, "mysql")


def test_a_version_1_store_is_migrated_with_its_rows(store_url: str) -> None:
    old = open_store(store_url)
    # Build a version 1 store by hand, as an older edge-agent left it.
    old.schema_version()
    for statement in migrations.pending(0, old.dialect)[0][1]:
        old._run(statement)
    old._run("INSERT INTO schema_version (version) VALUES (1)")
    rows = [
        ("cam1", 1, 10.0, {"fps": 1}),
        ("cam1", 2, 30.0, {"fps": 3}),
        ("cam1", 3, 20.0, {"fps": 2}),
        ("cam2", 9, 5.0, {"fps": 9}),
    ]
    for device, seq, ts, body in rows:
        old._run(
            "INSERT INTO messages (device_id, seq, kind, topic, ts, received, payload)"
            " VALUES (?, ?, 'telemetry', 't', ?, ?, ?)",
            (device, seq, ts, ts, json.dumps(body)),
        )
    assert old.schema_version() == 1
    old.migrate()
    assert old.schema_version() == migrations.LATEST
    assert old.latest("cam1", "telemetry") == {"fps": 3}  # the newest by time, not the last inserted
    assert old.latest("cam2", "telemetry") == {"fps": 9}
    assert old.counts() == {"telemetry": 4, "quarantined": 0, "duplicates": 0}
    old.close()


def test_a_store_newer_than_the_code_is_refused(store_url: str) -> None:
    store = open_store(store_url)
    store.migrate()
    store._run("UPDATE schema_version SET version = ?", (migrations.LATEST + 1,))
    with pytest.raises(ValueError, match="newer than this edge-agent knows"):
        store.migrate()
    store.close()
