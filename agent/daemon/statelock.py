"""One daemon per state directory: an advisory lock on ``<state_dir>/daemon.lock`` holding its PID.

``flock(2)`` locks belong to the open file: the kernel releases it when the process ends, however
it ends, so a crashed daemon never leaves a stale lock (Linux flock(2); Python's ``fcntl.flock``).
Python opens files non-inheritable (PEP 446), so child processes (engine builds) do not hold it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from agent.util.errors import InputError

LOCK_NAME = "daemon.lock"


def holder_pid(path: Path) -> str:
    """The PID the lock file names (what its holder wrote), or 'unknown'."""
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"


def lock_state_dir(state_dir: str) -> IO[str]:
    """Take the state directory's lock for this process (keep the returned file open while serving).

    Raises InputError naming the holder's PID when another process holds it.
    """
    path = Path(state_dir) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="ascii")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise InputError(
            f"paths.state_dir: {state_dir} is in use by another edge-agent daemon (PID {holder_pid(path)}, "
            f"lock {path}); one daemon per state directory: stop it or give this one its own state_dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
