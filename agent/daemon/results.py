"""Inference results over MQTT: a per-source publishing policy, the payload, and a sink that never blocks.

The results finisher (agent.daemon.finishing) hands each batch's results to
:meth:`ResultsPublisher.offer` (one of the daemon's ``result_sinks``). The policy is decided there
(cheap, pure); what is due goes into a bounded queue (one hand-over per batch) that one thread
drains, all that is queued at once, into the publisher's ``publish_results``. A full queue drops the
results and counts them: inference never waits for the broker. Payload: docs/schemas/result.json.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Callable, Deque, Dict, Generic, List, Mapping, Optional, Sequence, Tuple, TypeVar

from agent.config.sections import ResultsConfig
from agent.mqtt.messages import utc_timestamp
from agent.mqtt.publisher import Publisher
from agent.sources.frames import Frame

log = logging.getLogger(__name__)
Item = TypeVar("Item")
Signature = Tuple[Tuple[str, int], ...]
Due = Tuple[Tuple[int, ...], Dict[str, Any]]  # a frame's image shape and its result
POLICIES = ("every_frame", "on_change", "max_rate")
# After a wake-up the results thread gathers this long before it takes what is queued: a few larger
# bursts instead of one MQTT publish burst (and paho network-thread wake-up) per batch. QoS 0 results
# leave at most this much later; frame_age_ms is measured at inference.
GATHER_S = 0.02
_PASSED_THROUGH = ("source", "frame", "origin", "frame_age_ms", "engine", "engine_id", "precision")


def class_signature(result: Mapping[str, Any]) -> Signature:
    """What on_change compares: each class with its count (detection), or the predicted class (classification)."""
    if "detections" in result:
        counts = collections.Counter(str(d["label"]) for d in result["detections"])
        return tuple(sorted(counts.items()))
    top = result.get("top") or []
    return ((str(top[0]["label"]), 1),) if top else ()


class Policy:
    """One source's publishing policy; :meth:`due` says whether this result goes out. Pure logic."""

    def __init__(self, name: str, max_per_s: float) -> None:
        if name not in POLICIES:
            raise ValueError(f"results policy must be one of {', '.join(POLICIES)}, got {name!r}")
        if max_per_s <= 0:
            raise ValueError(f"results max_per_s must be > 0, got {max_per_s}")
        self.name = name
        self.interval = 1.0 / max_per_s
        self._last: Optional[Signature] = None
        self._next_at = float("-inf")

    def due(self, signature: Signature, now: float) -> bool:
        if self.name == "on_change":
            changed = signature != self._last
            self._last = signature
            return changed
        if self.name == "max_rate":
            if now < self._next_at:
                return False
            # A steady rate: the next slot follows this one, unless this one came more than a slot late.
            late = now - self._next_at >= self.interval
            self._next_at = now + self.interval if late else self._next_at + self.interval
            return True
        return True


def policy_for(settings: ResultsConfig, source_id: str) -> Policy:
    """The policy of one source: results.policy / max_per_s unless the *_by_source maps name it."""
    return Policy(
        settings.policy_by_source.get(source_id, settings.policy),
        settings.max_per_s_by_source.get(source_id, settings.max_per_s),
    )


def result_body(image_shape: Sequence[int], result: Mapping[str, Any]) -> Dict[str, Any]:
    """The result payload's body (docs/schemas/result.json) from the loop's result of a frame of ``image_shape``.

    Detection boxes (and landmark-like x, y pairs) arrive in frame pixels and leave normalised to
    [0, 1] of the original frame (xyxy); classification keeps its top-k with scores.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    body: Dict[str, Any] = {key: result.get(key) for key in _PASSED_THROUGH}
    body["frame_time"] = utc_timestamp(float(result["frame_time"]))
    body["width"], body["height"] = width, height
    if "detections" in result:
        body["task"] = "detection"
        body["detections"] = [_normalised(d, width, height) for d in result["detections"]]
    else:
        body["task"] = "classification"
        body["top"] = [
            {"label": t["label"], "index": int(t["index"]), "score": round(float(t["score"]), 6)}
            for t in result.get("top") or []
        ]
    return body


def _normalised(detection: Mapping[str, Any], width: int, height: int) -> Dict[str, Any]:
    out: Dict[str, Any] = {"label": detection["label"], "index": int(detection["index"])}
    out["score"] = round(float(detection["score"]), 6)
    for name, values in detection.items():
        if name in ("label", "index", "score"):
            continue
        if isinstance(values, list) and len(values) % 2 == 0 and all(isinstance(v, (int, float)) for v in values):
            scale = [width, height] * (len(values) // 2)
            out[name] = [round(min(1.0, max(0.0, float(v) / s)), 6) for v, s in zip(values, scale)]
    return out


class BoundedWorker(Generic[Item]):
    """A bounded queue drained by one thread; :meth:`offer` never blocks (what does not fit is dropped).

    The thread takes everything queued at once and calls ``handle`` with that list, so a burst costs
    one wake-up; it is woken only when an offer finds the queue empty (it drains before it waits), and
    then waits ``gather_s`` for more before it takes them.
    """

    def __init__(self, name: str, bound: int, handle: Callable[[List[Item]], None], gather_s: float = 0.0) -> None:
        self.name = name
        self.bound = bound
        self.gather_s = gather_s
        self._handle = handle
        self._items: Deque[Item] = collections.deque()
        self._ready = threading.Condition(threading.Lock())
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.dropped = 0  # the queue was full
        self.failed = 0  # items whose handling raised

    def offer(self, items: Sequence[Item]) -> int:
        """Queue ``items`` (in order) as far as the bound allows; returns how many were taken."""
        with self._ready:
            taken = max(0, min(len(items), self.bound - len(self._items)))
            if taken and not self._items:
                self._ready.notify()
            self._items.extend(items[:taken])
            self.dropped += len(items) - taken
        return taken

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Send what is queued (up to ``timeout``), then end the thread."""
        with self._ready:
            self._stopping = True
            self._ready.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def queued(self) -> int:
        return len(self._items)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._items and not self._stopping:
                    self._ready.wait()
                if self.gather_s > 0 and not self._stopping:
                    self._ready.wait(self.gather_s)  # only stop() notifies while items are queued
                items = list(self._items)
                self._items.clear()
            if not items:
                return
            try:
                self._handle(items)
            except Exception:
                self.failed += len(items)
                log.exception("%s: sending failed; going on", self.name)


class ResultsPublisher:
    """The results sink: per-source policy, then a bounded queue to ``publisher.publish_results``."""

    def __init__(self, publisher: Publisher, settings: ResultsConfig, clock: Callable[[], float] = time.monotonic):
        self.publisher = publisher
        self.settings = settings
        self._clock = clock
        self._policies: Dict[str, Policy] = {}
        self._lock = threading.Lock()
        self._worker: BoundedWorker[Due] = BoundedWorker("results-publisher", settings.queue, self._send, GATHER_S)
        self.published = 0
        self.skipped = 0  # not due by the policy
        self.offline = 0  # dropped by a link that was down (transient results)

    def offer(self, batch: Sequence[Tuple[Frame, Dict[str, Any]]]) -> None:
        """Called on the results finisher's thread with one batch's frames and their results; returns at once."""
        now = self._clock()
        due: List[Due] = []
        with self._lock:
            for frame, result in batch:
                source = str(result["source"])
                policy = self._policies.get(source)
                if policy is None:
                    policy = self._policies[source] = policy_for(self.settings, source)
                if policy.due(class_signature(result), now):
                    due.append((tuple(frame.image.shape), result))
        self.skipped += len(batch) - len(due)
        if due:
            self._worker.offer(due)

    def _send(self, items: List[Due]) -> None:
        bodies = [result_body(shape, result) for shape, result in items]
        seqs = self.publisher.publish_results(
            [(body["source"], body) for body in bodies], self.settings.qos, self.settings.store
        )
        sent = sum(seq is not None for seq in seqs)
        self.published += sent
        self.offline += len(seqs) - sent

    def start(self) -> None:
        self._worker.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._worker.stop(timeout)

    def stats(self) -> Dict[str, Any]:
        """For telemetry (docs/schemas/telemetry.json's ``results``)."""
        return {
            "published": self.published,
            "dropped": self._worker.dropped + self.offline,
            "dropped_queue_full": self._worker.dropped,
            "dropped_offline": self.offline,
            "skipped_by_policy": self.skipped,
            "queued": self._worker.queued,
            "failed": self._worker.failed,
        }
