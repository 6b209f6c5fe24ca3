"""Atomic file writes and hashing: nothing is ever half-written."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]
_CHUNK = 1 << 20


def sha256_file(path: PathLike) -> str:
    """Hex sha256 of a file's content, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the same value always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(str(directory), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, rename over ``path``, fsync the directory."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=str(target.parent))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    _fsync_dir(target.parent)


def atomic_write_text(path: PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: PathLike, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def atomic_move(src: PathLike, dst: PathLike) -> None:
    """Move a finished file into place atomically (same filesystem), with fsyncs."""
    source, target = Path(src), Path(dst)
    with open(source, "rb+") as handle:
        os.fsync(handle.fileno())
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)
    _fsync_dir(target.parent)


def quarantine(path: PathLike, epoch: float) -> Path:
    """Move a damaged file aside as ``<name>.corrupt-<UTC time>`` (next to it); return the new path.

    The original name is free afterwards, so the owner can recreate the file.
    """
    source = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch))
    target = source.with_name(f"{source.name}.corrupt-{stamp}")
    serial = 1
    while target.exists():
        serial += 1
        target = source.with_name(f"{source.name}.corrupt-{stamp}-{serial}")
    os.replace(source, target)
    return target


def read_if_present(path: Optional[str]) -> bytes:
    """The bytes of ``path``, or b"" when no path is given or it is not a file."""
    if not path or not os.path.isfile(path):
        return b""
    with open(path, "rb") as handle:
        return handle.read()
