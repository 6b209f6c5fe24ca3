"""Accuracy baselines under the state directory: versioned, hashed, written atomically.

A baseline holds what the promoted engine and the FP32 reference did on the spot-labeled set
(per-sample outcomes, per-class recall), with the hashes of the model, the engine and the set.
Each save is a new version file ``<state_dir>/baselines/accuracy-v<N>.json``; the newest
``keep`` are kept (an engine rollback can find the baseline recorded for its engine). Every
file carries a format version and the sha256 of its content, checked on load; :func:`set_aside_damaged`
moves the files that fail it aside (``*.corrupt-<time>``).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

from agent.util.errors import InputError
from agent.util.fileio import atomic_write_json, canonical_json, quarantine, sha256_bytes

FORMAT_VERSION = 1
KEEP = 10
_NAME = re.compile(r"^accuracy-v(\d+)\.json$")
_SET_ASIDE = re.compile(r"^accuracy-v(\d+)\.json\.corrupt-")


class BaselineError(InputError):
    """A baseline file that is unreadable, of another format, or whose hash does not match."""


def baseline_dir(state_dir: str) -> Path:
    return Path(state_dir) / "baselines"


def content_hash(record: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of everything but the hash itself."""
    return sha256_bytes(canonical_json({k: v for k, v in record.items() if k != "sha256"}).encode())


def versions(state_dir: str) -> List[int]:
    """Stored baseline versions, oldest first."""
    folder = baseline_dir(state_dir)
    if not folder.is_dir():
        return []
    found = (_NAME.match(p.name) for p in folder.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def path_of(state_dir: str, version: int) -> Path:
    return baseline_dir(state_dir) / f"accuracy-v{version:06d}.json"


def save(state_dir: str, record: Mapping[str, Any], keep: int = KEEP) -> Dict[str, Any]:
    """Store ``record`` as the next version; returns it with format_version, version, created and sha256."""
    existing = versions(state_dir)
    folder = baseline_dir(state_dir)
    aside = [int(m.group(1)) for m in map(_SET_ASIDE.match, os.listdir(folder) if folder.is_dir() else []) if m]
    stored = dict(record)
    stored.update(format_version=FORMAT_VERSION, version=max(existing + aside + [0]) + 1)  # never reused
    stored["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    stored["sha256"] = content_hash(stored)
    atomic_write_json(path_of(state_dir, stored["version"]), stored)
    for old in (existing + [stored["version"]])[:-keep] if keep > 0 else []:
        path_of(state_dir, old).unlink()
    return stored


def load(state_dir: str, version: int) -> Dict[str, Any]:
    """One stored version, verified; BaselineError naming the file otherwise."""
    path = path_of(state_dir, version)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BaselineError(f"baseline {path}: unreadable ({exc})") from None
    if not isinstance(record, dict) or record.get("format_version") != FORMAT_VERSION:
        found = record.get("format_version") if isinstance(record, dict) else None
        raise BaselineError(
            f"baseline {path}: format {found}, this version reads {FORMAT_VERSION}; record it again (edge-agent check "
            "--save-baseline)"
        )
    if record.get("sha256") != content_hash(record):
        raise BaselineError(
            f"baseline {path}: content does not match its sha256 (corrupted or edited); record it again (edge-agent "
            "check --save-baseline)"
        )
    return record


def latest(state_dir: str, engine_id: Optional[str] = None) -> Optional[Dict[str, Any]]:
    """The newest baseline (for ``engine_id`` only, when given), or None when there is none."""
    for version in reversed(versions(state_dir)):
        record = load(state_dir, version)
        if engine_id is None or record.get("engine", {}).get("id") == engine_id:
            return record
    return None


def set_aside_damaged(state_dir: str, clock: Callable[[], float] = time.time) -> List[Dict[str, Any]]:
    """Verify every stored version; move each damaged one aside. Returns what was moved and why."""
    moved = []
    for version in versions(state_dir):
        try:
            load(state_dir, version)
        except BaselineError as exc:
            path = path_of(state_dir, version)
            target = quarantine(path, clock())
            moved.append(
                {"file": str(path), "moved_to": str(target), "reason": str(exc), "lost": f"baseline v{version}"}
            )
    return moved
