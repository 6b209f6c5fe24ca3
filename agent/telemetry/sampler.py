"""The sampler thread: reads telemetry at a fixed rate (0.1-20 Hz) into a bounded history.

Timestamps are time.monotonic(), the clock the benchmark uses for its windows, so energy over a
benchmark window is an integral over the same time base. The schedule is drift-free (sample k
is due at start + k / rate); a late sample is taken at once and missed ones are skipped.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Deque, Dict, List, Optional, Tuple

from agent.telemetry.monitor import Telemetry

log = logging.getLogger(__name__)
MAX_RATE_HZ = 20.0


@dataclass(frozen=True)
class Sample:
    t: float  # time.monotonic() of the power reading
    total_mw: Optional[float]
    total_rail: Optional[str]
    snapshot: Dict[str, Any]


class Sampler:
    """Start once, read from any thread. ``history_s`` bounds memory (oldest samples go first)."""

    def __init__(self, telemetry: Telemetry, rate_hz: float = 1.0, history_s: float = 600.0) -> None:
        if not 0.0 < rate_hz <= MAX_RATE_HZ:
            raise ValueError(f"telemetry rate {rate_hz} Hz is outside 0-{MAX_RATE_HZ} Hz")
        self.telemetry = telemetry
        self.rate_hz = rate_hz
        self._history: Deque[Sample] = collections.deque(maxlen=max(2, int(history_s * rate_hz) + 1))
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.errors = 0

    def start(self) -> "Sampler":
        if self._thread is not None:
            return self
        self.telemetry.start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="telemetry-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self.telemetry.stop()

    def __enter__(self) -> "Sampler":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def sample_now(self) -> Sample:
        """Take one sample immediately (also used at window edges) and keep it in the history."""
        with self._read_lock:  # the sampler thread and a benchmark's window edges may both ask
            snapshot = self.telemetry.read()
        sample = Sample(snapshot["t"], snapshot["total_mw"], snapshot["total_rail"], snapshot)
        with self._lock:
            if not self._history or sample.t >= self._history[-1].t:
                self._history.append(sample)
        return sample

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        due = time.monotonic()
        while not self._stop.is_set():
            try:
                self.sample_now()
            except Exception:  # a sysfs surprise must not end telemetry for the daemon's lifetime
                self.errors += 1
                log.exception("telemetry sample failed")
            due += period
            now = time.monotonic()
            if due < now:
                due = now + period - ((now - due) % period)
            self._stop.wait(due - now)

    def samples(self, t0: Optional[float] = None, t1: Optional[float] = None) -> List[Sample]:
        with self._lock:
            history = list(self._history)
        return [s for s in history if (t0 is None or s.t >= t0) and (t1 is None or s.t <= t1)]

    def wait_past(self, t: float, timeout_s: float) -> bool:
        """Wait until a sample at or after ``t`` exists (taking one now when the sampler reads
        sysfs, whose readings are stamped when taken); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            latest = self.latest()
            if latest is not None and latest.t >= t:
                return True
            if self.telemetry.power_source != "tegrastats":
                self.sample_now()
                continue
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def latest(self) -> Optional[Sample]:
        with self._lock:
            return self._history[-1] if self._history else None

    def counter_points(self, t0: float, t1: float) -> List[Tuple[float, Dict[str, float]]]:
        """(t, {rail: cumulative mJ}) of the samples with energy counters in [t0, t1], plus the
        nearest one on either side (for interpolating the window's edges)."""
        points = [
            (s.t, s.snapshot["energy_counters_mj"]) for s in self.samples() if s.snapshot.get("energy_counters_mj")
        ]
        before = [p for p in points if p[0] < t0][-1:]
        after = [p for p in points if p[0] > t1][:1]
        return before + [p for p in points if t0 <= p[0] <= t1] + after

    def power_points(self, t0: float, t1: float) -> List[Tuple[float, float]]:
        """(t, mW) of the samples in [t0, t1] plus the nearest one on either side, which the
        trapezoid needs to interpolate the window's edges."""
        points = [(s.t, s.total_mw) for s in self.samples() if s.total_mw is not None]
        before = [p for p in points if p[0] < t0][-1:]
        after = [p for p in points if p[0] > t1][:1]
        return before + [p for p in points if t0 <= p[0] <= t1] + after
