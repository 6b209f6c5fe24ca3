"""Engine store: keys, atomic publish, verification of every lookup, LRU eviction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.engines.store import EngineStore, cache_key


def builder(payload: bytes):
    def build(path: str) -> dict:
        Path(path).write_bytes(payload)
        return {"precision": "fp32"}

    return build


def put(store: EngineStore, name: str, payload: bytes = b"engine-bytes") -> str:
    fields = {"model": name}
    key = cache_key(fields)
    store.put(key, fields, ".bin", builder(payload))
    return key


def test_key_depends_on_content_not_order() -> None:
    assert cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": [1, 2], "a": 1})
    assert cache_key({"a": 1}) != cache_key({"a": 2})


def test_hit_after_put(tmp_path: Path) -> None:
    store = EngineStore(str(tmp_path), 10**6)
    key = put(store, "m")
    found = store.lookup(key)
    assert found.hit and found.reason == "hit"
    assert Path(found.entry.engine_path).read_bytes() == b"engine-bytes"
    assert not store.lookup(cache_key({"model": "other"})).hit
    assert not [p for p in tmp_path.iterdir() if ".building" in p.name]


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda e, s: e.write_bytes(b"engine-bytez"), "corrupted"),
        (lambda e, s: e.write_bytes(b"engine"), "truncated"),
        (lambda e, s: e.unlink(), "missing"),
        (lambda e, s: s.write_text("{not json"), "unreadable"),
        (lambda e, s: s.write_text(json.dumps({**json.loads(s.read_text()), "format_version": 99})), "format 99"),
        (
            lambda e, s: s.write_text(json.dumps({**json.loads(s.read_text()), "key_fields": {"model": "x"}})),
            "does not describe",
        ),
    ],
)
def test_damaged_entries_are_reported_and_removed(tmp_path: Path, damage, reason: str) -> None:
    store = EngineStore(str(tmp_path), 10**6)
    key = put(store, "m")
    damage(tmp_path / f"{key}.bin", tmp_path / f"{key}.json")
    found = store.lookup(key)
    assert not found.hit and reason in found.reason
    assert not list(tmp_path.glob(f"{key}*"))
    assert store.lookup(key).reason == "not cached"


def test_failed_build_leaves_nothing(tmp_path: Path) -> None:
    store = EngineStore(str(tmp_path), 10**6)

    def broken(path: str) -> dict:
        Path(path).write_bytes(b"half")
        raise RuntimeError("builder crashed")

    fields = {"model": "m"}
    with pytest.raises(RuntimeError):
        store.put(cache_key(fields), fields, ".bin", broken)
    assert [p.name for p in tmp_path.iterdir() if p.name != ".lock"] == []


def entry_bytes(tmp_path: Path) -> int:
    return sum(p.stat().st_size for p in tmp_path.iterdir() if p.name != ".lock")


def test_lru_eviction_removes_the_least_recently_used(tmp_path: Path) -> None:
    store = EngineStore(str(tmp_path), 10**9)
    first = put(store, "first", b"x" * 1000)
    one_entry = entry_bytes(tmp_path)
    store.max_bytes = 2 * one_entry + 100  # room for two entries
    second = put(store, "second", b"x" * 1000)
    assert store.lookup(first).hit  # first is now more recently used than second
    third = put(store, "third", b"x" * 1000)
    assert store.lookup(first).hit and store.lookup(third).hit
    assert store.lookup(second).reason == "not cached"


def test_eviction_spares_protected_entries(tmp_path: Path) -> None:
    store = EngineStore(str(tmp_path), 10)  # smaller than any entry
    first = put(store, "first")
    fields = {"model": "second"}
    second = cache_key(fields)
    store.put(second, fields, ".bin", builder(b"y"), keep=[first])
    assert store.lookup(first).hit and store.lookup(second).hit
