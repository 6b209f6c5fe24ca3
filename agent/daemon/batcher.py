"""Batches of frames from several sources for one engine call.

The batcher takes the newest frame of each source that has one, up to the engine's batch. Once a
first source has a frame it waits at most ``max_wait_s`` for the others still serving (like
DeepStream's nvstreammux batched-push-timeout), then forms the batch without those that have
nothing new: a stalled or dead source never holds up the rest. With more sources than the
batch, the sources are taken in turn from where the last batch stopped, so each gets its share.

``pick`` and ``batch_is_due`` are the pure decisions; ``Batcher`` adds the wait on the captures.
"""

from __future__ import annotations

import time
from typing import Any, Callable, List, Optional, Sequence, Tuple

from agent.sources.frames import Frame
from agent.sources.latest import LatestFrameCapture
from agent.util.wakeup import Wakeup

Taken = Tuple[Frame, Any]  # a frame and what the capture's ``prepare`` made of it


def pick(ready: Sequence[bool], start: int, batch: int) -> List[int]:
    """Indexes of the sources to take, at most ``batch``, the ready ones in turn from ``start``."""
    count = len(ready)
    order = [(start + k) % count for k in range(count)] if count else []
    return [i for i in order if ready[i]][:batch]


def batch_is_due(ready: int, serving: int, batch: int, waited_s: float, max_wait_s: float) -> bool:
    """Whether to form a batch now: ``ready`` sources have a frame, ``serving`` may still send one."""
    if ready == 0:
        return False
    return ready >= min(batch, serving) or waited_s >= max_wait_s


class Batcher:
    """Batches from ``captures``; one thread (agent.daemon.prefetch) calls ``next_batch``."""

    def __init__(
        self,
        captures: Sequence[LatestFrameCapture],
        max_wait_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.captures = list(captures)
        self.max_wait_s = max_wait_s
        self.clock = clock
        self.arrived = Wakeup()  # set by a capture after each frame (its on_frame)
        self._next = 0  # where the next batch starts taking sources
        for capture in self.captures:
            capture.on_frame = self.notify

    def notify(self) -> None:
        """A capture's ``on_frame``: a frame arrived, or a capture ended."""
        self.arrived.set()

    def serving(self) -> List[LatestFrameCapture]:
        """The captures that may still deliver frames."""
        return [c for c in self.captures if not c.done()]

    def next_batch(self, batch: int, timeout: float) -> List[Taken]:
        """Up to ``batch`` frames, one per source; empty when no source had a frame within ``timeout``."""
        deadline = self.clock() + timeout
        first: Optional[float] = None  # when a first source had a frame
        while True:
            self.arrived.clear()
            now = self.clock()
            ready = [c.ready() for c in self.captures]
            if any(ready) and first is None:
                first = now
            waited = now - first if first is not None else 0.0
            count = sum(ready)
            serving = batch if count >= batch else len(self.serving())  # a full batch: no need to ask
            if batch_is_due(count, serving, batch, waited, self.max_wait_s):
                return self._take(pick(ready, self._next, batch))
            if first is None and (now >= deadline or not self.serving()):
                return []
            until = first + self.max_wait_s if first is not None else deadline
            self.arrived.wait(max(0.0, until - now))

    def _take(self, chosen: List[int]) -> List[Taken]:
        taken = []
        for i in chosen:
            got = self.captures[i].take_prepared(0.0)
            if got is not None:
                taken.append(got)
        if chosen:
            self._next = (chosen[-1] + 1) % len(self.captures)
        return taken
