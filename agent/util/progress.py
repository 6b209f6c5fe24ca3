"""Progress for long jobs (calibration, builds): a redrawn bar on a terminal, and on anything
else (the journal, a pipe) a log line at most every ``interval_s`` seconds plus one at the end."""

from __future__ import annotations

import logging
import sys
import time
from typing import IO, Callable, Optional

log = logging.getLogger("edge-agent.progress")
BAR_WIDTH = 30
Listener = Callable[[str, int, int, str], None]  # (label, done, total, detail), e.g. to publish over MQTT


def render_bar(label: str, done: int, total: int, detail: str = "", width: int = BAR_WIDTH) -> str:
    """'label [#####.....]  5/10 detail' (an unknown total shows the count alone)."""
    if total <= 0:
        return f"{label} {done} {detail}".rstrip()
    filled = min(width, int(width * done / total))
    return f"{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {detail}".rstrip()


class Progress:
    """Count steps of a job. ``update`` is cheap; output is rate-limited either way."""

    def __init__(
        self,
        label: str,
        total: int = 0,
        stream: Optional[IO[str]] = None,
        interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        listener: Optional[Listener] = None,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.detail = ""
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval_s = interval_s
        self.clock = clock
        self.started = clock()
        self.last_output: Optional[float] = None
        self.logged_done = -1
        self.closed = False
        self.listener = listener

    def update(self, steps: int = 1, detail: str = "") -> None:
        self.done += steps
        self.detail = detail or self.detail
        if self.listener is not None:
            self.listener(self.label, self.done, self.total, self.detail)
        now = self.clock()
        if self.tty:
            if self.last_output is None or now - self.last_output >= 0.1 or self.done >= self.total > 0:
                self.stream.write("\r" + render_bar(self.label, self.done, self.total, self.detail) + "\x1b[K")
                self.stream.flush()
                self.last_output = now
        elif self.last_output is None or now - self.last_output >= self.interval_s:
            self._log_line(now)

    def _log_line(self, now: float) -> None:
        of = f"/{self.total}" if self.total > 0 else ""
        log.info("%s: %d%s after %.1f s %s", self.label, self.done, of, now - self.started, self.detail)
        self.last_output = now
        self.logged_done = self.done

    def close(self) -> None:
        """Finish the bar line (terminal) or log the final count."""
        if self.closed:
            return
        self.closed = True
        if self.tty:
            self.stream.write("\r" + render_bar(self.label, self.done, self.total, self.detail) + "\x1b[K\n")
            self.stream.flush()
        elif self.logged_done != self.done:
            self._log_line(self.clock())

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
