"""The next engine input, formed on its own thread while the engine runs the current one.

DeepStream forms batches in its muxer, upstream of the inference element, so the engine never
waits for them. Here the prefetcher does the same: as soon as the inference loop takes a batch, it
forms the next (the batcher's wait on the sources, preprocessing for frames the capture threads
did not prepare, the stacking copy) on its thread. The Python of that work then runs while the
engine call has released the GIL, instead of between two engine calls on a CPU whose caches the
engine call just filled (measured on this project's 2-vCPU machine: a batch's decoding after an ONNX
Runtime call costs about 6x its CPU in a tight loop). At most one formed batch waits: its frames
are at most one engine call older than taking them after the call, which frame age reports.

``assemble`` and ``refit`` are the pure part; ``Prefetcher`` adds the thread.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence

import numpy as np

from agent.daemon.batcher import Batcher, Taken
from agent.model.info import InputSpec
from agent.model.preprocess import preprocess, stack_batch
from agent.sources.latest import LatestFrameCapture
from agent.util.wakeup import Wakeup

log = logging.getLogger(__name__)
POLL_S = 0.1  # how often a waiting prefetcher looks at its stop flag (and shows it is alive)
STALE_S = 1.0  # a prefetcher whose last pass is older than this is stuck


@dataclass(frozen=True)
class Assembled:
    """One engine call's input: the frames taken, their letterboxes, the batch tensor and its spec."""

    taken: Sequence[Taken]
    boxes: Sequence[Any]
    tensor: np.ndarray
    spec: InputSpec


def made_for(made: InputSpec, spec: InputSpec) -> bool:
    """Whether what was made for ``made`` feeds ``spec`` (the same object, the usual case, is checked first)."""
    return made is spec or made == spec


def assemble(taken: Sequence[Taken], spec: InputSpec) -> Assembled:
    """The batch for ``spec``: each frame's sample as the capture prepared it for this spec, else
    preprocessed now; a short batch zero-padded."""
    samples, boxes = zip(
        *(p[1] if p is not None and made_for(p[0], spec) else preprocess(f.image, spec) for f, p in taken)
    )
    return Assembled(taken, boxes, stack_batch(samples, spec), spec)


def refit(assembled: Assembled, spec: InputSpec) -> List[Assembled]:
    """``assembled`` as batches for ``spec``: itself when formed for it, else (an engine with another
    input or batch was swapped in meanwhile) its frames again, in batches of ``spec.batch``."""
    if made_for(assembled.spec, spec):
        return [assembled]
    taken = assembled.taken
    return [assemble(taken[start : start + spec.batch], spec) for start in range(0, len(taken), spec.batch)]


class Prefetcher:
    """Forms batches from ``captures`` for ``spec()`` (the serving engine's input), one ahead of the
    loop's ``take``; only the inference loop takes them."""

    def __init__(
        self, captures: Sequence[LatestFrameCapture], max_wait_s: float, spec: Callable[[], InputSpec]
    ) -> None:
        self.batcher = Batcher(captures, max_wait_s)
        self._spec = spec
        self._slot: Optional[Assembled] = None
        self._filled = Wakeup()  # set when a batch was put in the slot (or the prefetcher ended)
        self._emptied = Wakeup()  # set when the loop took the slot's batch: form the next
        self._emptied.set()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.sources_done = False  # every source ended or gave up, and every batch formed was taken
        self.error = ""  # why the prefetcher stopped, when it failed
        self.last_pass = time.monotonic()

    def set_captures(self, captures: Sequence[LatestFrameCapture], max_wait_s: float) -> None:
        """Form batches from these captures from the next batch on (a reload of the sources)."""
        self.batcher = Batcher(captures, max_wait_s)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="batch-prefetch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._emptied.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def healthy(self, now: float) -> bool:
        """Whether the prefetcher is running and made a pass lately (it is not stuck in a batch)."""
        return self._thread is not None and self._thread.is_alive() and now - self.last_pass < STALE_S

    def take(self, timeout: float) -> Optional[Assembled]:
        """The batch formed for the loop, waiting up to ``timeout``; None if none came (see
        ``sources_done`` and ``error``)."""
        deadline = time.monotonic() + timeout
        while self._slot is None:
            left = deadline - time.monotonic()
            if left <= 0 or not self._filled.wait(left) or self.sources_done or self.error:
                break
        got, self._slot = self._slot, None
        if got is not None:
            self._emptied.set()
        return got

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.last_pass = time.monotonic()
                if not self._emptied.wait(POLL_S):  # the loop has not taken the last batch yet
                    continue
                spec = self._spec()
                taken = self.batcher.next_batch(spec.batch, timeout=POLL_S)
                if taken:
                    self._slot = assemble(taken, spec)
                    self._filled.set()
                    continue
                self._emptied.set()  # nothing formed: the slot is still empty
                if not self.batcher.serving():
                    self.sources_done = True
                    return
        except Exception as exc:  # e.g. a frame preprocessing cannot take: the loop reports it and stops
            self.error = f"forming a batch failed: {type(exc).__name__}: {exc}"
            log.exception("inference: forming a batch failed")
        finally:
            self._filled.set()  # a loop waiting in take() sees the end at once
