"""Child processes: stop them politely, then firmly."""

from __future__ import annotations

import subprocess
from typing import Any


def stop_process(proc: "subprocess.Popen[Any]", grace_s: float = 5.0) -> None:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL and reap. No-op when it has already exited."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(grace_s)
