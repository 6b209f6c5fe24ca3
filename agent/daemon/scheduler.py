"""When the daemon's periodic jobs are due (pure logic; the daemon calls it with the clock).

An interval of 0 disables a job; any other is at least the schedule's minimum
(agent.config.load.INTERVAL_MINIMUM_S). A job that ran late is not run twice to catch up: its next
run is one interval after it actually became due, so a long benchmark never causes a burst. A job
handed to another thread is ``started``: it is not due again until it is ``done``, and its next run
is then one interval after it ended, so queued jobs never pile up behind a slow one.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Set

from agent.config.load import interval_error


class Scheduler:
    def __init__(self, intervals: Mapping[str, float], now: float) -> None:
        self.intervals: Dict[str, float] = {}
        self.next_due: Dict[str, Optional[float]] = {}
        self.busy: Set[str] = set()
        for name, seconds in intervals.items():
            self.set_interval(name, seconds, now)

    def set_interval(self, name: str, seconds: float, now: float) -> None:
        """Change (or add) a job's interval; the first run is one interval from ``now``."""
        error = interval_error(name, seconds)
        if error:
            raise ValueError(error)
        self.intervals[name] = float(seconds)
        self.next_due[name] = now + seconds if seconds > 0 else None

    def trigger(self, name: str, now: float) -> None:
        """Make a job due now (a remote command asked for it), then keep its interval."""
        self.next_due[name] = now

    def due(self, now: float) -> List[str]:
        """Jobs due at ``now`` and not busy, in order of how overdue they are; each is rescheduled."""
        ready = sorted(
            (t, name) for name, t in self.next_due.items() if t is not None and t <= now and name not in self.busy
        )
        for _, name in ready:
            self._reschedule(name, now)
        return [name for _, name in ready]

    def started(self, name: str) -> None:
        """``name`` was handed to another thread: it is not due again until ``done``."""
        self.busy.add(name)

    def done(self, name: str, now: float) -> None:
        """A started job ended at ``now``: its next run is one interval later."""
        self.busy.discard(name)
        self._reschedule(name, now)

    def _reschedule(self, name: str, now: float) -> None:
        interval = self.intervals.get(name, 0.0)
        self.next_due[name] = now + interval if interval > 0 else None

    def seconds_to_next(self, now: float) -> Optional[float]:
        pending = [t for name, t in self.next_due.items() if t is not None and name not in self.busy]
        return max(0.0, min(pending) - now) if pending else None
