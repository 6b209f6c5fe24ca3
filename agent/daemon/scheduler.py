"""When the daemon's periodic jobs are due (pure logic; the daemon calls it with the clock).

An interval of 0 disables a job. A job that ran late is not run twice to catch up: its next run
is one interval after it actually became due, so a long benchmark never causes a burst.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional


class Scheduler:
    def __init__(self, intervals: Mapping[str, float], now: float) -> None:
        self.intervals: Dict[str, float] = {}
        self.next_due: Dict[str, Optional[float]] = {}
        for name, seconds in intervals.items():
            self.set_interval(name, seconds, now)

    def set_interval(self, name: str, seconds: float, now: float) -> None:
        """Change (or add) a job's interval; the first run is one interval from ``now``."""
        if seconds < 0:
            raise ValueError(f"{name}: an interval cannot be negative, got {seconds}")
        self.intervals[name] = float(seconds)
        self.next_due[name] = now + seconds if seconds > 0 else None

    def trigger(self, name: str, now: float) -> None:
        """Make a job due now (a remote command asked for it), then keep its interval."""
        self.next_due[name] = now

    def due(self, now: float) -> List[str]:
        """Jobs due at ``now``, in order of how overdue they are; each is rescheduled."""
        ready = sorted((t, name) for name, t in self.next_due.items() if t is not None and t <= now)
        for _, name in ready:
            interval = self.intervals.get(name, 0.0)
            self.next_due[name] = now + interval if interval > 0 else None
        return [name for _, name in ready]

    def seconds_to_next(self, now: float) -> Optional[float]:
        pending = [t for t in self.next_due.values() if t is not None]
        return max(0.0, min(pending) - now) if pending else None
