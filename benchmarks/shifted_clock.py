"""Run ``python -m agent ...`` with a wall clock that can jump while it runs.

Usage: ``python -m benchmarks.shifted_clock OFFSET_FILE agent-args...``. ``time.time`` (and
``time.time_ns``) return the real time plus the seconds written in OFFSET_FILE, re-read every
0.1 s, so writing a new offset is a clock jump as the daemon sees it (as NTP setting the clock
of a Jetson booted with a wrong one would be). Monotonic time is left alone, as the kernel
leaves it. The same shift as tests/mqtt/clock_proc.py, made adjustable.
"""

from __future__ import annotations

import runpy
import sys
import threading
import time
from pathlib import Path

POLL_S = 0.1


def read_offset(path: Path) -> float:
    """The offset in seconds; 0 when the file is absent, empty or half-written."""
    try:
        return float(path.read_text(encoding="utf-8").strip() or 0.0)
    except (OSError, ValueError):
        return 0.0


def install(path: Path) -> None:
    """Shift ``time.time`` by the file's offset from now on."""
    offset = [read_offset(path)]
    real, real_ns = time.time, time.time_ns

    def follow() -> None:
        while True:
            time.sleep(POLL_S)
            offset[0] = read_offset(path)

    time.time = lambda: real() + offset[0]
    time.time_ns = lambda: real_ns() + int(offset[0] * 1e9)
    threading.Thread(target=follow, name="shifted-clock", daemon=True).start()


def main() -> None:
    install(Path(sys.argv[1]))
    sys.argv = ["agent"] + sys.argv[2:]
    runpy.run_module("agent", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
