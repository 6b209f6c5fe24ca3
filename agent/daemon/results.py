"""Inference results over MQTT: a per-source publishing policy, the payload, and a sink that never blocks.

The inference loop hands every frame's result to :meth:`ResultsPublisher.offer` (one of the
daemon's ``result_sinks``). The policy is decided there (cheap, pure); what is due goes into a
bounded queue that one thread drains into the publisher. A full queue drops the result and counts
it: inference never waits for the broker. Payload: docs/schemas/result.json.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from typing import Any, Callable, Dict, Generic, Mapping, Optional, Sequence, Tuple, TypeVar

from agent.config.sections import ResultsConfig
from agent.mqtt.messages import utc_timestamp
from agent.mqtt.publisher import Publisher
from agent.sources.frames import Frame

log = logging.getLogger(__name__)
Item = TypeVar("Item")
Signature = Tuple[Tuple[str, int], ...]
POLICIES = ("every_frame", "on_change", "max_rate")
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
    """A bounded queue drained by one thread calling ``handle``; :meth:`offer` never blocks (full: dropped)."""

    def __init__(self, name: str, bound: int, handle: Callable[[Item], None]) -> None:
        self.name = name
        self._handle = handle
        self._queue: "queue.Queue[Optional[Item]]" = queue.Queue(bound)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.dropped = 0  # the queue was full
        self.failed = 0  # handle raised

    def offer(self, item: Item) -> bool:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Send what is queued (up to ``timeout``), then end the thread."""
        if not self._thread.is_alive():
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._queue.put(None, timeout=0.05)
                break
            except queue.Full:
                continue
        self._thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._handle(item)
            except Exception:
                self.failed += 1
                log.exception("%s: sending failed; going on", self.name)


class ResultsPublisher:
    """The results sink: per-source policy, then a bounded queue to ``publisher.publish_result``."""

    def __init__(self, publisher: Publisher, settings: ResultsConfig, clock: Callable[[], float] = time.monotonic):
        self.publisher = publisher
        self.settings = settings
        self._clock = clock
        self._policies: Dict[str, Policy] = {}
        self._lock = threading.Lock()
        self._worker: BoundedWorker[Tuple[Tuple[int, ...], Dict[str, Any]]] = BoundedWorker(
            "results-publisher", settings.queue, self._send
        )
        self.published = 0
        self.skipped = 0  # not due by the policy
        self.offline = 0  # dropped by a link that was down (transient results)

    def offer(self, frame: Frame, result: Dict[str, Any]) -> None:
        """Called on the inference thread for every frame's result; returns at once."""
        source = str(result["source"])
        with self._lock:
            policy = self._policies.get(source)
            if policy is None:
                policy = self._policies[source] = policy_for(self.settings, source)
            due = policy.due(class_signature(result), self._clock())
        if not due:
            self.skipped += 1
            return
        self._worker.offer((tuple(frame.image.shape), result))

    def _send(self, item: Tuple[Tuple[int, ...], Dict[str, Any]]) -> None:
        shape, result = item
        body = result_body(shape, result)
        if self.publisher.publish_result(body["source"], body, self.settings.qos, self.settings.store) is None:
            self.offline += 1
        else:
            self.published += 1

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
