"""Fixtures shared by the fleet tests: a private PostgreSQL cluster and a store of each dialect."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from agent.fleet.store import Store, open_store

from . import postgres


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[postgres.Postgres]:
    """One private PostgreSQL cluster for the session; skips naming why when it cannot run."""
    reason = postgres.missing()
    if reason:
        pytest.skip(reason)
    cluster = postgres.Postgres().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_url(pg_cluster: postgres.Postgres) -> str:
    """The URL of a fresh, empty PostgreSQL database."""
    return pg_cluster.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store URL of each dialect (the same test runs against both)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fleet.sqlite'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A migrated store of each dialect."""
    opened = open_store(store_url)
    opened.migrate()
    yield opened
    opened.close()
