"""Content-addressed engine cache.

An entry is ``<key><suffix>`` (the engine) plus ``<key>.json`` (its sidecar). The key is the
sha256 of everything that makes an engine valid: model hash, backend and version, device
identity, precision, input profile, calibration hash and build options. The sidecar holds a
format version, the key fields and the engine file's sha256 and size; every lookup checks them,
so a truncated or corrupted engine is reported and rebuilt, never loaded. Files are written
atomically; the cache is capped in size and evicts the least recently used entries.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from agent.util.fileio import atomic_move, atomic_write_json, canonical_json, sha256_bytes, sha256_file

FORMAT_VERSION = 1
log = logging.getLogger(__name__)


def cache_key(fields: Mapping[str, Any]) -> str:
    """A stable key for a set of key fields (order and formatting do not matter)."""
    return sha256_bytes(canonical_json(dict(fields)).encode())[:40]


@dataclass
class Entry:
    key: str
    engine_path: str
    meta: Dict[str, Any]


@dataclass
class Lookup:
    """A lookup's answer: the entry on a hit, else why there was none."""

    entry: Optional[Entry]
    reason: str  # "hit", "not cached", or what was wrong with the cached entry

    @property
    def hit(self) -> bool:
        return self.entry is not None


class EngineStore:
    def __init__(self, root: str, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.root.mkdir(parents=True, exist_ok=True)

    def _sidecar(self, key: str) -> Path:
        return self.root / f"{key}.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / ".lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _verify(self, key: str) -> Lookup:
        sidecar = self._sidecar(key)
        if not sidecar.exists():
            return Lookup(None, "not cached")
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return Lookup(None, f"sidecar {sidecar.name} unreadable ({exc})")
        if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
            return Lookup(
                None,
                f"sidecar {sidecar.name} has format {meta.get('format_version') if isinstance(meta, dict) else None}, "
                f"expected {FORMAT_VERSION}",
            )
        if meta.get("key") != key or cache_key(meta.get("key_fields", {})) != key:
            return Lookup(None, f"sidecar {sidecar.name} does not describe key {key}")
        engine = self.root / str(meta.get("engine_file", ""))
        if not engine.is_file():
            return Lookup(None, f"engine file {engine.name} is missing")
        size = engine.stat().st_size
        if size != meta.get("engine_size"):
            return Lookup(
                None, f"engine file {engine.name} is {size} bytes, sidecar says {meta.get('engine_size')} (truncated?)"
            )
        digest = sha256_file(engine)
        if digest != meta.get("engine_sha256"):
            return Lookup(
                None,
                f"engine file {engine.name} sha256 {digest[:12]}... does not match the sidecar's "
                f"{str(meta.get('engine_sha256'))[:12]}... (corrupted)",
            )
        return Lookup(Entry(key, str(engine), meta), "hit")

    def lookup(self, key: str) -> Lookup:
        """Find and verify an entry. A bad entry is removed and its problem is the reason."""
        with self._locked():
            found = self._verify(key)
            if found.hit:
                assert found.entry is not None
                found.entry.meta["last_used"] = time.time()
                atomic_write_json(self._sidecar(key), found.entry.meta)
            elif found.reason != "not cached":
                log.warning("engine cache: %s; removing the entry", found.reason)
                self._remove(key)
        return found

    def put(
        self,
        key: str,
        key_fields: Mapping[str, Any],
        suffix: str,
        build: Callable[[str], Dict[str, Any]],
        keep: Sequence[str] = (),
    ) -> Entry:
        """Build into a temp file with ``build(tmp_path) -> extra metadata``, then publish atomically.

        ``keep`` names keys that eviction must not remove (the engines in use).
        """
        if cache_key(key_fields) != key:
            raise ValueError("key does not match key_fields")
        tmp = self.root / f".{key}.{os.getpid()}.building{suffix}"
        try:
            extra = build(str(tmp))
            if not tmp.is_file():
                raise RuntimeError(f"the build produced no engine file at {tmp}")
            engine_file = f"{key}{suffix}"
            now = time.time()
            meta = {
                "format_version": FORMAT_VERSION,
                "key": key,
                "key_fields": dict(key_fields),
                "engine_file": engine_file,
                "engine_sha256": sha256_file(tmp),
                "engine_size": tmp.stat().st_size,
                "created": now,
                "last_used": now,
                "build": extra,
            }
            with self._locked():
                atomic_move(tmp, self.root / engine_file)
                atomic_write_json(self._sidecar(key), meta)
                self._evict(protect=set(keep) | {key})
        finally:
            if tmp.exists():
                tmp.unlink()
        return Entry(key, str(self.root / engine_file), meta)

    def discard(self, key: str) -> None:
        """Remove an entry (e.g. one the runtime refused to load)."""
        with self._locked():
            self._remove(key)

    def entries(self) -> List[Tuple[str, Dict[str, Any]]]:
        found = []
        for sidecar in self.root.glob("*.json"):
            try:
                meta = json.loads(sidecar.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                meta = {}
            found.append((sidecar.stem, meta if isinstance(meta, dict) else {}))
        return found

    def _entry_size(self, key: str, meta: Mapping[str, Any]) -> int:
        engine = self.root / str(meta.get("engine_file", ""))
        return (engine.stat().st_size if meta.get("engine_file") and engine.is_file() else 0) + self._sidecar(
            key
        ).stat().st_size

    def total_bytes(self) -> int:
        return sum(self._entry_size(key, meta) for key, meta in self.entries())

    def _evict(self, protect: set) -> List[str]:
        entries = sorted(self.entries(), key=lambda kv: kv[1].get("last_used", 0))
        total = sum(self._entry_size(k, m) for k, m in entries)
        evicted = []
        for key, meta in entries:
            if total <= self.max_bytes:
                break
            if key in protect:
                continue
            total -= self._entry_size(key, meta)
            self._remove(key)
            evicted.append(key)
            log.info("engine cache: evicted %s (least recently used; cache over %d bytes)", key, self.max_bytes)
        return evicted

    def _remove(self, key: str) -> None:
        for path in self.root.glob(f"{key}*"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
