"""Objects that appear and leave, per source and class: ``object`` events and retained JPEG snapshots.

A tracked class is present in a frame when one of its detections (or the classification's top
class) scores at least snapshots.min_score. Its first such frame starts an object (an ``object``
event, state ``start``, and, at most once per snapshots.min_interval_s and source, a JPEG of that
frame with the boxes drawn on ``snapshot/<source_id>``, retained); a frame of the same source
that comes snapshots.end_after_s after the class was last seen ends it (state ``end``, with its
duration). Tracking is pure logic (:class:`ObjectTracker`); JPEG encoding and publishing happen on
one thread behind a bounded queue, so the inference loop never waits. :class:`ResultOutputs` puts
the results and snapshot sinks together for the daemon.

The snapshot is the raw JPEG bytes, retained, as Frigate publishes ``<prefix>/<camera>/<object>/snapshot``
(https://docs.frigate.video/integrations/mqtt/; its object processing calls
``client.publish(..., jpg_bytes, retain=True)`` after ``cv2.imencode('.jpg', ...)``).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from agent.config.sections import Config, SnapshotsConfig
from agent.daemon.finishing import Sink
from agent.daemon.results import BoundedWorker, ResultsPublisher
from agent.mqtt.events import Event
from agent.mqtt.messages import utc_timestamp
from agent.mqtt.publisher import Publisher
from agent.sources.frames import Frame

BOX_COLOUR = (0, 0, 255)  # BGR red


@dataclasses.dataclass(frozen=True)
class Transition:
    """An object of one class on one source started or ended (times: the frames' epoch seconds)."""

    source: str
    label: str
    state: str  # "start" or "end"
    score: float  # at the start; the best score seen, at the end
    started: float
    duration_s: Optional[float] = None  # end only: last seen - started

    def details(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"source": self.source, "class": self.label, "state": self.state}
        out.update(score=round(self.score, 6), started=utc_timestamp(self.started))
        if self.duration_s is not None:
            out["duration_s"] = round(self.duration_s, 3)
        return out


def present_classes(result: Mapping[str, Any], classes: Sequence[str], min_score: float) -> Dict[str, float]:
    """Tracked class -> its best score in this result, for the classes scoring at least ``min_score``."""
    if "detections" in result:
        candidates = [(str(d["label"]), float(d["score"])) for d in result["detections"]]
    else:
        top = result.get("top") or []
        candidates = [(str(top[0]["label"]), float(top[0]["score"]))] if top else []
    present: Dict[str, float] = {}
    for label, score in candidates:
        if score >= min_score and (not classes or label in classes):
            present[label] = max(score, present.get(label, 0.0))
    return present


@dataclasses.dataclass
class _Track:
    started: float
    last_seen: float
    best: float


class ObjectTracker:
    """Start and end of each (source, class) from the classes present in each frame. Pure logic."""

    def __init__(self, end_after_s: float) -> None:
        self.end_after_s = end_after_s
        self._tracks: Dict[str, Dict[str, _Track]] = {}

    def update(self, source: str, present: Mapping[str, float], now: float) -> List[Transition]:
        tracks = self._tracks.setdefault(source, {})
        out: List[Transition] = []
        for label, track in list(tracks.items()):
            if label in present:
                track.last_seen, track.best = now, max(track.best, present[label])
            elif now - track.last_seen >= self.end_after_s:
                del tracks[label]
                out.append(Transition(source, label, "end", track.best, track.started, track.last_seen - track.started))
        for label, score in sorted(present.items()):
            if label not in tracks:
                tracks[label] = _Track(now, now, score)
                out.append(Transition(source, label, "start", score, now))
        return out


def render_snapshot(image: np.ndarray, result: Mapping[str, Any], max_width: int, quality: int) -> bytes:
    """The frame as JPEG with the detections' boxes and labels (or the top class) drawn, at most ``max_width`` wide."""
    import cv2

    canvas = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    width = canvas.shape[1]
    scale = min(1.0, max_width / float(width))
    thickness = max(2, int(round(2 / scale)))  # still two pixels wide once scaled down
    for det in result.get("detections") or []:
        x1, y1, x2, y2 = (int(round(float(v))) for v in det["box"])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), BOX_COLOUR, thickness)
        caption = f"{det['label']} {float(det['score']):.2f}"
        cv2.putText(canvas, caption, (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5 / scale, BOX_COLOUR, 1)
    top = result.get("top") or []
    if "detections" not in result and top:
        caption = f"{top[0]['label']} {float(top[0]['score']):.2f}"
        cv2.putText(canvas, caption, (8, int(24 / scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.7 / scale, BOX_COLOUR, 2)
    if scale < 1.0:
        size = (max_width, max(1, int(round(canvas.shape[0] * scale))))
        canvas = cv2.resize(canvas, size, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {canvas.shape} snapshot as JPEG")
    return encoded.tobytes()


@dataclasses.dataclass(frozen=True)
class _Job:
    transitions: List[Transition]
    image: Optional[np.ndarray]  # a copy of the frame when a snapshot is due
    result: Mapping[str, Any]


class SnapshotPublisher:
    """The snapshot sink: tracks objects on the caller's thread, encodes and publishes on its own."""

    def __init__(self, publisher: Publisher, settings: SnapshotsConfig, clock: Callable[[], float] = time.monotonic):
        self.publisher = publisher
        self.settings = settings
        self._clock = clock
        self.tracker = ObjectTracker(settings.end_after_s)
        self._lock = threading.Lock()
        self._last_snapshot: Dict[str, float] = {}
        self._worker: BoundedWorker[_Job] = BoundedWorker("snapshot-publisher", settings.queue, self._send)
        self.snapshots = 0
        self.events = 0
        self.offline = 0

    def offer(self, batch: Sequence[Tuple[Frame, Dict[str, Any]]]) -> None:
        """Called on the results finisher's thread with one batch's frames and their results; returns at once."""
        jobs = [job for job in (self._track(frame, result) for frame, result in batch) if job is not None]
        if jobs:
            self._worker.offer(jobs)

    def _track(self, frame: Frame, result: Dict[str, Any]) -> Optional[_Job]:
        source = str(result["source"])
        present = present_classes(result, self.settings.classes, self.settings.min_score)
        with self._lock:
            transitions = self.tracker.update(source, present, float(result["frame_time"]))
            if not transitions:
                return None
            image = None
            now = self._clock()
            if any(t.state == "start" for t in transitions):
                if now - self._last_snapshot.get(source, float("-inf")) >= self.settings.min_interval_s:
                    self._last_snapshot[source] = now
                    image = frame.image.copy()  # the capture may reuse its buffer
        return _Job(transitions, image, result)

    def _send(self, jobs: List[_Job]) -> None:
        for job in jobs:
            source = job.transitions[0].source
            if job.image is not None:
                jpeg = render_snapshot(job.image, job.result, self.settings.max_width, self.settings.jpeg_quality)
                if self.publisher.publish_snapshot(source, jpeg):
                    self.snapshots += 1
                else:
                    self.offline += 1
            for t in job.transitions:
                verb = "appeared on" if t.state == "start" else f"left after {t.duration_s:.1f} s:"
                details = dict(t.details(), snapshot=job.image is not None and t.state == "start")
                self.publisher.publish_event(Event.OBJECT, "info", f"{t.label} {verb} source {source}", details)
                self.events += 1

    def start(self) -> None:
        self._worker.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._worker.stop(timeout)

    def stats(self) -> Dict[str, Any]:
        return {
            "published": self.snapshots,
            "events": self.events,
            "dropped": self._worker.dropped + self.offline,
            "failed": self._worker.failed,
        }


class ResultOutputs:
    """What the daemon feeds every result to: the results publisher and the snapshot publisher, as configured."""

    def __init__(self, config: Config, publisher: Publisher) -> None:
        self.results = ResultsPublisher(publisher, config.results) if config.results.enabled else None
        self.snapshots = SnapshotPublisher(publisher, config.snapshots) if config.snapshots.enabled else None

    @property
    def sinks(self) -> List[Sink]:
        return [output.offer for output in (self.results, self.snapshots) if output is not None]

    def start(self) -> None:
        for output in (self.results, self.snapshots):
            if output is not None:
                output.start()

    def stop(self, timeout: float = 2.0) -> None:
        for output in (self.results, self.snapshots):
            if output is not None:
                output.stop(timeout / 2)

    def stats(self) -> Dict[str, Any]:
        """Telemetry's ``results`` (docs/schemas/telemetry.json)."""
        out: Dict[str, Any] = self.results.stats() if self.results is not None else {"published": 0, "dropped": 0}
        out["enabled"] = self.results is not None
        if self.snapshots is not None:
            out["snapshots"] = self.snapshots.stats()
        return out
