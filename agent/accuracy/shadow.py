"""Shadow evaluation: live checks without a labeled set.

:class:`ShadowEvaluator`: a sampled fraction of live frames also runs through the FP32 reference
on a side thread, rate-limited, and the engine's answers are compared with the reference's per
class over a rolling window: drift seen without any labels. :class:`SideWorker` is the side
thread both live checks use (this one and agent.accuracy.livelabels).

The inference loop only calls ``offer`` (a random draw, a token bucket and a hand-over that never
waits); the reference inference happens on the side thread.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from agent.accuracy.metrics import wilson_interval
from agent.config.sections import AccuracyConfig, ModelConfig
from agent.model.tasks.detection import assign_detections
from agent.sources.frames import Frame

log = logging.getLogger(__name__)


class TokenBucket:
    """At most ``rate`` events per second on average, bursts up to ``burst``; rate 0 allows none."""

    def __init__(self, rate: float, burst: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.last = burst, clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.rate > 0 and self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class SideWorker:
    """Runs ``handle(item)`` on its own thread. ``offer`` hands an item over without waiting; while
    an item is still pending the new one is dropped and counted. Failures are logged and counted,
    never raised into the caller."""

    def __init__(self, name: str, handle: Callable[[Any], None]) -> None:
        self.name, self.handle = name, handle
        self.pending: Optional[Any] = None
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread: Optional[threading.Thread] = None
        self.counts = {"handled": 0, "dropped_busy": 0, "failed": 0}
        self.last_error: Optional[str] = None

    def offer(self, item: Any) -> bool:
        with self.lock:
            if self.pending is not None:
                self.counts["dropped_busy"] += 1
                return False
            self.pending = item
        self.wake.set()
        return True

    def run_pending(self) -> bool:
        """Handle the pending item here, if any (the thread's loop; tests call it directly)."""
        with self.lock:
            item, self.pending = self.pending, None
            self.wake.clear()
        if item is None:
            return False
        try:
            self.handle(item)
            self.counts["handled"] += 1
        except Exception as exc:  # a bad frame or a failing reference must not stop the agent
            self.counts["failed"] += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("%s: %s", self.name, self.last_error)
        return True

    def _loop(self) -> None:
        while not self.stopping.is_set():
            if self.wake.wait(0.2):
                self.run_pending()

    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        self.wake.set()
        if self.thread is not None:
            self.thread.join(timeout)
            self.thread = None


def agreement_pairs(
    task: str, reference: Mapping[str, Any], engine: Mapping[str, Any], match_iou: float = 0.5
) -> List[Tuple[int, int]]:
    """(reference class, engine class or -1) pairs for one frame's decoded results: one pair for
    classification, one per reference box for detection (matched as labeled boxes are)."""
    if task == "classification":
        if reference.get("predicted") is None:
            return []
        answer = engine.get("predicted")
        return [(int(reference["predicted"]), -1 if answer is None else int(answer))]

    def arrays(result: Mapping[str, Any]) -> Tuple[np.ndarray, np.ndarray]:
        dets = result.get("detections", [])
        return np.asarray([d["box"] for d in dets], dtype=np.float64).reshape(-1, 4), np.asarray(
            [d["index"] for d in dets], dtype=np.int64
        )

    ref_boxes, ref_classes = arrays(reference)
    eng_boxes, eng_classes = arrays(engine)
    assigned, _ = assign_detections(ref_boxes, ref_classes, eng_boxes, eng_classes, match_iou)
    return list(zip(ref_classes.tolist(), assigned.tolist()))


def rolling_recall(pairs: Sequence[Tuple[int, int]], labels: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """Per class: share of (truth, answer) pairs of that truth answered the same, with its Wilson 95% interval."""
    out = {}
    for index, name in enumerate(labels):
        answers = [a for t, a in pairs if t == index]
        hits = sum(1 for a in answers if a == index)
        out[name] = {
            "n": len(answers),
            "recall": hits / len(answers) if answers else None,
            "ci95": list(wilson_interval(hits, len(answers))),
        }
    return out


class ShadowEvaluator:
    """Engine-vs-FP32-reference agreement on sampled live frames, per class, over a rolling window."""

    def __init__(
        self,
        reference: Any,  # a Pipeline (infer_frames) running the FP32 reference
        labels: Sequence[str],
        task: str,
        fraction: float,
        max_per_s: float,
        window: int,
        match_iou: float = 0.5,
        rng: Optional[random.Random] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reference, self.labels, self.task = reference, list(labels), task
        self.fraction, self.match_iou = fraction, match_iou
        self.rng = rng or random.Random()
        self.bucket = TokenBucket(max_per_s, clock=clock)
        self.frames: Deque[List[Tuple[int, int]]] = deque(maxlen=window)
        self.counts = {"offered": 0, "sampled": 0, "rate_limited": 0}
        self.results_lock = threading.Lock()
        self.worker = SideWorker("shadow-fp32", self._evaluate)

    def offer(self, frame: Frame, engine_result: Mapping[str, Any]) -> bool:
        """Called by the inference loop after each frame; True when the frame went to the reference."""
        self.counts["offered"] += 1
        if self.fraction <= 0 or self.rng.random() >= self.fraction:
            return False
        self.counts["sampled"] += 1
        if not self.bucket.take():
            self.counts["rate_limited"] += 1
            return False
        return self.worker.offer((frame, dict(engine_result)))

    def _evaluate(self, item: Tuple[Frame, Dict[str, Any]]) -> None:
        frame, engine_result = item
        [reference_result] = self.reference.infer_frames([frame])
        pairs = agreement_pairs(self.task, reference_result, engine_result, self.match_iou)
        with self.results_lock:
            self.frames.append(pairs)

    def snapshot(self) -> Dict[str, Any]:
        """Counters and the rolling per-class agreement (the engine's recall against the reference)."""
        with self.results_lock:
            pairs = [p for frame in self.frames for p in frame]
            frames = len(self.frames)
        per_class = {
            name: {"agreement": r["recall"], "n": r["n"], "ci95": r["ci95"]}
            for name, r in rolling_recall(pairs, self.labels).items()
        }
        agreed = sum(1 for t, a in pairs if t == a)
        return {
            "frames": frames,
            "window": self.frames.maxlen,
            "agreement": agreed / len(pairs) if pairs else None,
            "per_class": per_class,
            **self.counts,
            **self.worker.counts,
            "last_error": self.worker.last_error,
        }

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()


def shadow_from_config(a: AccuracyConfig, model_cfg: ModelConfig, reference: Any) -> ShadowEvaluator:
    """The shadow evaluator the accuracy section configures for the model's task, around a reference
    EngineRun (agent.accuracy.check.open_reference(..., threads=1) leaves the other cores to inference)."""
    return ShadowEvaluator(
        reference.pipeline,
        reference.labels,
        model_cfg.task,
        a.shadow_fraction,
        a.shadow_max_per_s,
        a.shadow_window,
        model_cfg.detection.match_iou,
    )
