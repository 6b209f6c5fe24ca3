"""Live checks without a labeled set.

* :class:`ShadowEvaluator`: a sampled fraction of live frames also runs through the FP32
  reference on a side thread, rate-limited, and the engine's answers are compared with the
  reference's per class over a rolling window: drift seen without any labels.
* :class:`LiveRing`: a ring of sampled live frames kept on disk with ids; labels for them arrive
  later (files dropped in a folder now, the MQTT ``label`` command calls :meth:`LiveRing.label`)
  and feed a rolling per-class recall that can be compared with the baseline.

The inference loop only calls ``offer`` (a random draw, a token bucket and a hand-over that never
waits); the reference inference and the disk writes happen on the side threads.
"""

from __future__ import annotations

import csv
import json
import logging
import random
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .errors import InputError
from .fileio import atomic_write_bytes, atomic_write_json
from .metrics import wilson_interval
from .sources import Frame
from .tasks.detection import assign_detections

log = logging.getLogger(__name__)
INDEX_VERSION = 1


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


def agreement_pairs(task: str, reference: Mapping[str, Any], engine: Mapping[str, Any], match_iou: float = 0.5) -> List[Tuple[int, int]]:
    """(reference class, engine class or -1) pairs for one frame's decoded results: one pair for
    classification, one per reference box for detection (matched as labeled boxes are)."""
    if task == "classification":
        if reference.get("predicted") is None:
            return []
        answer = engine.get("predicted")
        return [(int(reference["predicted"]), -1 if answer is None else int(answer))]

    def arrays(result: Mapping[str, Any]) -> Tuple[np.ndarray, np.ndarray]:
        dets = result.get("detections", [])
        return np.asarray([d["box"] for d in dets], dtype=np.float64).reshape(-1, 4), np.asarray([d["index"] for d in dets], dtype=np.int64)

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
        out[name] = {"n": len(answers), "recall": hits / len(answers) if answers else None, "ci95": list(wilson_interval(hits, len(answers)))}
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
        per_class = {name: {"agreement": r["recall"], "n": r["n"], "ci95": r["ci95"]} for name, r in rolling_recall(pairs, self.labels).items()}
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


class LiveRing:
    """Sampled live frames on disk (``<folder>/frames/<id>.png``) awaiting labels; labeled ones feed
    a rolling per-class recall. Classification only: a label is one class per frame."""

    def __init__(self, folder: str, labels: Sequence[str], capacity: int, fraction: float, rng: Optional[random.Random] = None) -> None:
        self.root = Path(folder)
        self.frames_dir = self.root / "frames"
        self.drop_dir = self.root / "labels"
        self.labels, self.capacity, self.fraction = list(labels), capacity, fraction
        self.rng = rng or random.Random()
        self.lock = threading.Lock()
        self.entries: "OrderedDict[str, Dict[str, Any]]" = OrderedDict()
        self.history: Deque[Tuple[str, int, int]] = deque(maxlen=max(1, capacity))  # (id, truth, predicted)
        self.next_id = 1
        self.worker = SideWorker("live-ring", self._keep)
        self._load()

    def _load(self) -> None:
        index = self.root / "index.json"
        if not index.exists():
            return
        try:
            data = json.loads(index.read_text(encoding="utf-8"))
            if data.get("format_version") != INDEX_VERSION or data.get("labels") != self.labels:
                raise ValueError(f"format {data.get('format_version')} / classes {data.get('labels')} do not fit")
            self.next_id = int(data["next_id"])
            self.entries = OrderedDict((e["id"], e) for e in data["entries"])
            self.history.extend((h[0], int(h[1]), int(h[2])) for h in data["history"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("live ring: %s unusable (%s); starting empty", index, exc)

    def _save(self) -> None:
        data = {"format_version": INDEX_VERSION, "labels": self.labels, "next_id": self.next_id, "entries": list(self.entries.values()), "history": [list(h) for h in self.history]}
        atomic_write_json(self.root / "index.json", data)

    def offer(self, frame: Frame, result: Mapping[str, Any]) -> bool:
        """Called by the inference loop; a sampled frame is written by the ring's own thread."""
        if self.capacity <= 0 or self.fraction <= 0 or result.get("predicted") is None or self.rng.random() >= self.fraction:
            return False
        return self.worker.offer((frame, int(result["predicted"])))

    def _keep(self, item: Tuple[Frame, int]) -> None:
        self.keep(*item)

    def keep(self, frame: Frame, predicted: int) -> str:
        """Store one frame with the engine's answer now; returns its id (the oldest is evicted)."""
        import cv2

        ok, png = cv2.imencode(".png", frame.image)
        if not ok:
            raise ValueError(f"frame {frame.index} could not be encoded")
        with self.lock:
            frame_id = f"f{self.next_id:08d}"
            self.next_id += 1
            atomic_write_bytes(self.frames_dir / f"{frame_id}.png", png.tobytes())
            self.entries[frame_id] = {"id": frame_id, "ts": time.time(), "origin": frame.origin, "frame": frame.index, "predicted": predicted, "label": None}
            while len(self.entries) > self.capacity:
                old, _ = self.entries.popitem(last=False)
                (self.frames_dir / f"{old}.png").unlink(missing_ok=True)
            self._save()
        return frame_id

    def label(self, frame_id: str, label: str) -> None:
        """Record the true class of a kept frame (the MQTT ``label`` command calls this)."""
        with self.lock:
            entry = self.entries.get(frame_id)
            if entry is None:
                raise InputError(f"label: no frame {frame_id!r} in the live ring (it holds {len(self.entries)}, oldest evicted first)")
            if label not in self.labels:
                raise InputError(f"label: unknown class {label!r} (classes: {', '.join(self.labels)})")
            entry["label"] = label
            truth = self.labels.index(label)
            kept = [h for h in self.history if h[0] != frame_id]
            self.history.clear()
            self.history.extend(kept + [(frame_id, truth, int(entry["predicted"]))])
            self._save()

    def ingest_drops(self) -> Dict[str, Any]:
        """Apply label files dropped in ``<folder>/labels/`` (CSV ``id,label`` or JSONL
        ``{"id", "label"}``); each processed file moves to ``labels/done/``. Errors name file and line."""
        applied, errors = 0, []
        for path in sorted(self.drop_dir.glob("*")) if self.drop_dir.is_dir() else []:
            if not path.is_file() or path.suffix.lower() not in (".csv", ".jsonl"):
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    frame_id, label = _parse_label_line(line, path.suffix.lower())
                    self.label(frame_id, label)
                    applied += 1
                except (InputError, ValueError) as exc:
                    errors.append(f"{path}:{number}: {exc}")
            done = self.drop_dir / "done"
            done.mkdir(parents=True, exist_ok=True)
            path.replace(done / path.name)
        return {"applied": applied, "errors": errors}

    def outcomes(self) -> Dict[str, Tuple[str, bool]]:
        """The labeled frames as drift outcomes: id -> (true class, engine was right)."""
        with self.lock:
            return {i: (self.labels[t], t == p) for i, t, p in self.history}

    def snapshot(self) -> Dict[str, Any]:
        with self.lock:
            pairs = [(t, p) for _, t, p in self.history]
            waiting = sum(1 for e in self.entries.values() if e["label"] is None)
        return {"kept": len(self.entries), "awaiting_label": waiting, "labeled": len(pairs), "per_class": rolling_recall(pairs, self.labels), **self.worker.counts}

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()


def _parse_label_line(line: str, suffix: str) -> Tuple[str, str]:
    if suffix == ".jsonl":
        entry = json.loads(line)
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not isinstance(entry.get("label"), str):
            raise ValueError('expected {"id": "...", "label": "..."}')
        return entry["id"], entry["label"]
    cells = next(csv.reader([line]))
    if len(cells) != 2:
        raise ValueError(f"expected 2 columns (id,label), got {len(cells)}")
    return cells[0].strip(), cells[1].strip()


def shadow_from_config(cfg: Any, reference: Any) -> ShadowEvaluator:
    """The shadow evaluator the accuracy section configures, around a reference EngineRun
    (agent.accuracy.open_reference(cfg, threads=1) leaves the other cores to inference)."""
    a = cfg.accuracy
    return ShadowEvaluator(reference.pipeline, reference.labels, cfg.model.task, a.shadow_fraction, a.shadow_max_per_s, a.shadow_window, cfg.model.detection.match_iou)


def live_ring_from_config(cfg: Any, labels: Sequence[str]) -> Optional[LiveRing]:
    """The live ring under ``<state_dir>/live`` as the accuracy section configures it; None for
    detection models (a frame-level label says nothing about boxes) or when accuracy.live_ring is 0."""
    if cfg.model.task != "classification" or cfg.accuracy.live_ring <= 0:
        return None
    return LiveRing(str(Path(cfg.paths.state_dir) / "live"), labels, cfg.accuracy.live_ring, cfg.accuracy.live_sample_fraction)
