"""A wake-up signal between threads, on one raw lock: cheaper per hand-off than threading.Event.

threading.Event and Condition are written in Python (a wait allocates a lock and queues it; a set
walks the waiters under another lock); the inference loop and the capture threads hand off every
frame, so that cost, and the GIL hand-offs inside it, add up at thousands of frames per second. A
raw lock is released and acquired in C. The signal is binary and consumed by the wait that sees it:
any number of threads may ``set``; one thread waits.
"""

from __future__ import annotations

import _thread


class Wakeup:
    """set() by any thread; wait() returns True once a set() came since the last wait() or clear()."""

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._lock.acquire()  # held: not set

    def set(self) -> None:
        try:
            self._lock.release()
        except RuntimeError:  # already set (the lock is free)
            pass

    def clear(self) -> None:
        self._lock.acquire(False)

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for a set(); consumes it."""
        if timeout <= 0:
            return self._lock.acquire(False)
        return self._lock.acquire(True, timeout)
