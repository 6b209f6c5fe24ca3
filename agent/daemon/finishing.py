"""Engine outputs to results on their own thread: decoding, the result dicts, the sinks.

The inference loop hands each engine call's outputs here and starts the next call, so decoding
(NMS, top-k), the per-frame result dicts, the live checks and the result sinks (the MQTT results
and snapshot publishers, the ``--json`` printer) run while the engine works, not between two engine
calls. One thread finishes the batches in the order they were inferred. At most ``depth`` batches
wait: a loop that outruns its finisher waits for it rather than dropping results, so a sink that
hangs stops inference, and with it the systemd watchdog's keep-alives.

``results_of`` is the pure part; ``Finisher`` adds the thread.
"""

from __future__ import annotations

import collections
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from agent.daemon.prefetch import Assembled
from agent.sources.frames import Frame
from agent.util.wakeup import Wakeup

log = logging.getLogger(__name__)
# Gets each batch's frames with their results, in order (MQTT results and snapshots; per_result: --json).
Sink = Callable[[Sequence[Tuple[Frame, Dict[str, Any]]]], None]
POLL_S = 0.1  # how often a waiting finisher (or a loop waiting for room) looks at its stop flag
DEPTH = 2  # batches inferred and not yet finished before the loop waits


@dataclass(frozen=True)
class Inferred:
    """One engine call's outputs with what finishing them needs."""

    assembled: Assembled
    outputs: Dict[str, np.ndarray]
    decode: Callable[[Dict[str, np.ndarray], int, Sequence[Any]], List[Any]]  # the inferring Pipeline's decode
    identity: Mapping[str, Any]  # engine, engine_id, precision of the engine that inferred it
    started: float  # monotonic time the engine call started: frame age is measured up to it


def per_result(handle: Callable[[Dict[str, Any]], None]) -> Sink:
    """A sink calling ``handle`` with each result of the batch in turn."""

    def sink(batch: Sequence[Tuple[Frame, Dict[str, Any]]]) -> None:
        for _, result in batch:
            handle(result)

    return sink


def results_of(inferred: Inferred, decoded: Sequence[Any]) -> List[Tuple[Frame, Dict[str, Any]]]:
    """Each frame of the batch with its result dict (agent.daemon.results publishes these)."""
    results = []
    for (frame, _), one in zip(inferred.assembled.taken, decoded):
        result = {
            "source": frame.source_id,
            "frame": frame.index,
            "origin": frame.origin,
            "frame_time": frame.wall_time,
            "frame_age_ms": round((inferred.started - frame.timestamp) * 1000.0, 2),
            **inferred.identity,
            **one.as_dict(),
        }
        results.append((frame, result))
    return results


class Finisher:
    """Finishes inferred batches in order: decode, then ``observe`` and ``on_result`` per frame, then
    each sink with the batch (``sinks`` is read at every batch: the daemon may append to it)."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        observe: Optional[Callable[[Frame, Dict[str, Any]], None]] = None,
        on_result: Optional[Callable[[Dict[str, Any]], None]] = None,
        depth: int = DEPTH,
    ) -> None:
        self.sinks = sinks
        self.observe = observe  # live checks (agent.daemon.livechecks): must never wait or raise
        self.on_result = on_result
        self.depth = depth
        self._pending: Deque[Inferred] = collections.deque()
        self._work = Wakeup()  # set when a batch was queued (or closing began)
        self._room = Wakeup()  # set when a batch was finished
        self._closing = False
        self._thread: Optional[threading.Thread] = None
        self.error = ""  # why finishing stopped, when it failed

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="results-finisher", daemon=True)
        self._thread.start()

    def put(self, inferred: Inferred, stop: threading.Event) -> None:
        """Queue a batch; waits while ``depth`` batches wait already, until there is room or ``stop``."""
        while len(self._pending) >= self.depth and not stop.is_set() and not self.error:
            self._room.wait(POLL_S)
        self._pending.append(inferred)
        self._work.set()

    def close(self, timeout: float = 5.0) -> None:
        """Finish what is queued, then end the thread."""
        self._closing = True
        self._work.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._work.wait(POLL_S)
                continue
            inferred = self._pending[0]
            try:
                self._finish(inferred)
            except Exception as exc:  # a decoder or sink that fails stops the loop, which reports it
                self.error = f"finishing results failed: {type(exc).__name__}: {exc}"
                log.exception("inference: finishing results failed")
                self._room.set()
                return
            self._pending.popleft()
            self._room.set()

    def _finish(self, inferred: Inferred) -> None:
        assembled = inferred.assembled
        decoded = inferred.decode(inferred.outputs, len(assembled.taken), list(assembled.boxes))
        results = results_of(inferred, decoded)
        for frame, result in results:
            if self.observe is not None:
                self.observe(frame, result)
            if self.on_result is not None:
                self.on_result(result)
        for sink in self.sinks:
            sink(results)
