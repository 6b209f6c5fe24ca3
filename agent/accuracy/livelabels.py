"""Live labels: a ring of sampled live frames kept on disk with ids, labeled later.

Labels arrive as files dropped in a folder or through the MQTT ``label`` command (which calls
:meth:`LiveRing.label`) and feed a rolling per-class recall that can be compared with the
baseline. The inference loop only calls ``offer``; the disk writes happen on the ring's own
side thread.
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
from typing import Any, Deque, Dict, Mapping, Optional, Sequence, Tuple

from agent.accuracy.shadow import SideWorker, rolling_recall
from agent.config.sections import AccuracyConfig
from agent.sources.frames import Frame
from agent.util.errors import InputError
from agent.util.fileio import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)
INDEX_VERSION = 1


class LiveRing:
    """Sampled live frames on disk (``<folder>/frames/<id>.png``) awaiting labels; labeled ones feed
    a rolling per-class recall. Classification only: a label is one class per frame."""

    def __init__(
        self, folder: str, labels: Sequence[str], capacity: int, fraction: float, rng: Optional[random.Random] = None
    ) -> None:
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
        data = {
            "format_version": INDEX_VERSION,
            "labels": self.labels,
            "next_id": self.next_id,
            "entries": list(self.entries.values()),
            "history": [list(h) for h in self.history],
        }
        atomic_write_json(self.root / "index.json", data)

    def offer(self, frame: Frame, result: Mapping[str, Any]) -> bool:
        """Called by the inference loop; a sampled frame is written by the ring's own thread."""
        if (
            self.capacity <= 0
            or self.fraction <= 0
            or result.get("predicted") is None
            or self.rng.random() >= self.fraction
        ):
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
            self.entries[frame_id] = {
                "id": frame_id,
                "ts": time.time(),
                "origin": frame.origin,
                "frame": frame.index,
                "predicted": predicted,
                "label": None,
            }
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
                raise InputError(
                    f"label: no frame {frame_id!r} in the live ring (it holds {len(self.entries)}, oldest evicted "
                    "first)"
                )
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
        return {
            "kept": len(self.entries),
            "awaiting_label": waiting,
            "labeled": len(pairs),
            "per_class": rolling_recall(pairs, self.labels),
            **self.worker.counts,
        }

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()


def _parse_label_line(line: str, suffix: str) -> Tuple[str, str]:
    if suffix == ".jsonl":
        entry = json.loads(line)
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("id"), str)
            or not isinstance(entry.get("label"), str)
        ):
            raise ValueError('expected {"id": "...", "label": "..."}')
        return entry["id"], entry["label"]
    cells = next(csv.reader([line]))
    if len(cells) != 2:
        raise ValueError(f"expected 2 columns (id,label), got {len(cells)}")
    return cells[0].strip(), cells[1].strip()


def live_ring_from_config(
    accuracy: AccuracyConfig, task: str, state_dir: str, labels: Sequence[str]
) -> Optional[LiveRing]:
    """The live ring under ``<state_dir>/live`` as the accuracy section configures it; None for
    detection models (``task``: a frame-level label says nothing about boxes) or when accuracy.live_ring is 0."""
    if task != "classification" or accuracy.live_ring <= 0:
        return None
    return LiveRing(str(Path(state_dir) / "live"), labels, accuracy.live_ring, accuracy.live_sample_fraction)
