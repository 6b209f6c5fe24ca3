"""Child processes: stop them politely, then firmly; or wait for one while watching for a reason
to stop it (a limit, a cancel)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any, Callable, Optional


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


def wait_unless(
    proc: "subprocess.Popen[Any]", stop_reason: Callable[[], Optional[str]], poll_s: float = 0.1
) -> Optional[str]:
    """Wait for ``proc`` (started with ``start_new_session=True``) to exit, asking ``stop_reason``
    every ``poll_s``; once it gives a reason, SIGKILL the child's whole process group, reap it and
    return the reason. None when the child exited by itself."""
    while proc.poll() is None:
        reason = stop_reason()
        if reason:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return reason
        time.sleep(poll_s)
    return None
