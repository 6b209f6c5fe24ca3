"""The daemon's live checks: shadow evaluation against the FP32 reference and the live ring.

``LiveChecks`` wires agent.accuracy.shadow into the daemon. The inference loop calls :meth:`observe`
after every frame (cheap: random draws, a token bucket and hand-overs that never wait); the FP32
reference runs on the shadow thread with one ONNX Runtime thread on the CPU so it cannot starve
the loop, and ring frames are written by the ring's thread. ``capture_samples`` takes the next N
live frames, written on the command's own thread. Shadow evaluation is skipped while the serving
engine is itself the reference (FP32 on ONNX Runtime): it would compare the engine with itself.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from agent.accuracy import baselines, drift
from agent.accuracy.check import open_reference
from agent.accuracy.livelabels import live_ring_from_config
from agent.accuracy.shadow import ShadowEvaluator
from agent.config.sections import Config
from agent.engines.identity import served_precision
from agent.sources.frames import Frame
from agent.util.errors import EdgeAgentError, InputError

log = logging.getLogger(__name__)
REFERENCE_SKIP = (
    "the serving engine is the FP32 reference (fp32 on ONNX Runtime): shadow evaluation would compare it with itself"
)


def serves_reference(report: Mapping[str, Any]) -> bool:
    """Whether an engine build report describes the FP32 reference itself (fp32 on ONNX Runtime)."""
    return report.get("backend") == "onnxruntime" and served_precision(report) == "fp32"


def open_shadow_reference(cfg: Config) -> Any:
    """The FP32 reference pipeline, on one CPU thread so it leaves the other cores to inference."""

    return open_reference(cfg.model, cfg.backend, threads=1).pipeline


def disagreeing_classes(per_class: Mapping[str, Mapping[str, Any]], threshold: float) -> Dict[str, Dict[str, Any]]:
    """Classes whose agreement with the reference is significantly below ``threshold``: the upper
    end of the Wilson 95% interval is under it (so a handful of samples never raises drift)."""
    return {
        name: dict(entry)
        for name, entry in per_class.items()
        if entry.get("n") and entry.get("ci95") and entry["ci95"][1] < threshold
    }


class SampleCapture:
    """The next N live frames, handed from the inference loop to a waiting command thread."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.wanted = 0
        self.frames: List[Tuple[Frame, int]] = []

    def observe(self, frame: Frame, predicted: int) -> None:
        if not self.wanted:  # unlocked read: a stale 0 only delays the capture by one frame
            return
        with self.cond:
            if self.wanted:
                self.frames.append((frame, predicted))
                self.wanted -= 1
                self.cond.notify_all()

    def take(self, count: int, timeout: float) -> List[Tuple[Frame, int]]:
        """Wait for the next ``count`` frames (fewer on timeout); one capture at a time."""
        with self.cond:
            if self.wanted or self.frames:
                raise EdgeAgentError("capture_samples: another capture is running")
            self.wanted = count
            self.cond.wait_for(lambda: not self.wanted, timeout)
            taken, self.frames, self.wanted = self.frames, [], 0
        return taken


class LiveChecks:
    """Shadow agreement and the live ring for the daemon; every method is safe from any thread."""

    def __init__(self, cfg: Config, labels: Sequence[str], load_reference: Callable[[], Any]) -> None:
        """``load_reference()`` returns the FP32 reference pipeline; it is called on the shadow
        thread the first time a frame is evaluated (never on the inference thread). Reads the
        accuracy, model and paths sections."""
        acc = cfg.accuracy
        self.cfg, self.labels, self.task = cfg, list(labels), cfg.model.task
        self.threshold = float(acc.shadow_min_agreement)
        self._load_reference = load_reference
        self._reference: Optional[Any] = None
        self._reference_lock = threading.Lock()
        self.shadow: Optional[ShadowEvaluator] = None
        self.shadow_skipped: Optional[str] = "no engine yet"
        self.engine: Optional[str] = None
        self.ring = live_ring_from_config(acc, cfg.model.task, cfg.paths.state_dir, self.labels)
        if self.ring is not None:
            self.ring.start()
        self.samples = SampleCapture()
        self.flagged: Dict[str, Dict[str, Any]] = {}
        self.label_status = "ok"

    # ----- the serving engine ----------------------------------------------------------------

    def engine_changed(self, report: Mapping[str, Any]) -> None:
        """A new engine serves: a fresh agreement window (agreement belongs to one engine), or none."""
        old, self.shadow = self.shadow, None
        if old is not None:
            old.worker.stop(timeout=0.0)  # on the inference thread: never wait for a reference inference
        self.engine = str(report.get("cache_key"))
        self.flagged = {}
        acc = self.cfg.accuracy
        if serves_reference(report):
            self.shadow_skipped = REFERENCE_SKIP
        elif float(acc.shadow_fraction) <= 0 or float(acc.shadow_max_per_s) <= 0:
            self.shadow_skipped = "accuracy.shadow_fraction or accuracy.shadow_max_per_s is 0"
        else:
            self.shadow_skipped = None
            match_iou = float(self.cfg.model.detection.match_iou)
            shadow = ShadowEvaluator(
                self,
                self.labels,
                self.task,
                float(acc.shadow_fraction),
                float(acc.shadow_max_per_s),
                int(acc.shadow_window),
                match_iou,
            )
            shadow.start()
            self.shadow = shadow
        log.info("live checks: shadow evaluation %s", "on" if self.shadow else f"off ({self.shadow_skipped})")

    def infer_frames(self, frames: Sequence[Frame]) -> List[Dict[str, Any]]:
        """The FP32 reference's results (the shadow thread calls this; the reference loads on first use)."""
        with self._reference_lock:
            if self._reference is None:
                self._reference = self._load_reference()
            return self._reference.infer_frames(frames)

    # ----- the inference loop ----------------------------------------------------------------

    def observe(self, frame: Frame, result: Mapping[str, Any]) -> None:
        """After each live inference (on the results finisher's thread): never waits, never raises."""
        shadow = self.shadow
        if shadow is not None:
            shadow.offer(frame, result)
        if self.ring is not None and result.get("predicted") is not None:
            self.ring.offer(frame, result)
            self.samples.observe(frame, int(result["predicted"]))

    # ----- commands --------------------------------------------------------------------------

    def capture_samples(self, count: int, timeout: float) -> Dict[str, Any]:
        """Keep the next ``count`` live frames in the ring; their ids, to label later."""
        if self.ring is None:
            raise InputError(
                "capture_samples: live labels need a classification model and accuracy.live_ring > 0 (model.task is "
                f"{self.task})"
            )
        taken = self.samples.take(count, timeout)
        ids = [self.ring.keep(frame, predicted) for frame, predicted in taken]
        answer: Dict[str, Any] = {"ids": ids, "captured": len(ids), "requested": count}
        if len(ids) < count:
            answer["note"] = f"only {len(ids)} frame(s) arrived within {timeout:g} s"
        return answer

    def label(self, labels: Mapping[str, str]) -> Dict[str, Any]:
        """Apply spot labels {id: class}; each refusal is named with its reason."""
        if self.ring is None:
            raise InputError(
                f"label: live labels need a classification model and accuracy.live_ring > 0 (model.task is {self.task})"
            )
        accepted: List[str] = []
        refused: Dict[str, str] = {}
        for frame_id, name in labels.items():
            try:
                self.ring.label(frame_id, name)
                accepted.append(frame_id)
            except InputError as exc:
                refused[frame_id] = str(exc)
        return {"accepted": accepted, "refused": refused, "live_recall": self.ring.snapshot()["per_class"]}

    def ingest_drops(self) -> Optional[Dict[str, Any]]:
        """Label files dropped in <state_dir>/live/labels/ (None without a ring)."""
        return self.ring.ingest_drops() if self.ring is not None else None

    # ----- reports ---------------------------------------------------------------------------

    def new_disagreements(self) -> Dict[str, Dict[str, Any]]:
        """Classes that fell below accuracy.shadow_min_agreement since the last call (recovered ones re-arm)."""
        if self.shadow is None:
            return {}
        low = disagreeing_classes(self.shadow.snapshot()["per_class"], self.threshold)
        fresh = {name: entry for name, entry in low.items() if name not in self.flagged}
        self.flagged = low
        return fresh

    def label_drift(self) -> Optional[Dict[str, Any]]:
        """The labeled live frames against the newest baseline's outcomes (agent.accuracy.drift.compare: the
        samples differ, so Fisher's exact test); None without labels or a baseline."""
        outcomes = self.ring.outcomes() if self.ring is not None else {}
        if not outcomes:
            return None

        try:
            record = baselines.latest(self.cfg.paths.state_dir)
        except EdgeAgentError as exc:
            log.warning("live labels: the baseline cannot be read (%s)", exc)
            return None
        if record is None:
            return None
        base = {key: (value[0], bool(value[1])) for key, value in record["engine"]["outcomes"].items()}
        result = drift.compare(base, outcomes, self.labels, drift.Thresholds.from_config(self.cfg.accuracy))
        result["baseline_version"] = record.get("version")
        return result

    def new_label_drift(self, result: Optional[Mapping[str, Any]]) -> Optional[Mapping[str, Any]]:
        """``result`` when its status (warn or alert) is new since the last call, else None."""
        status = result["status"] if result else "ok"
        changed, self.label_status = status != self.label_status, status
        return result if changed and status != "ok" else None

    def snapshot(self) -> Dict[str, Any]:
        shadow: Dict[str, Any] = {
            "enabled": self.shadow is not None,
            "engine": self.engine,
            "min_agreement": self.threshold,
        }
        if self.shadow is not None:
            shadow.update(self.shadow.snapshot())
        else:
            shadow["skipped"] = self.shadow_skipped
        ring = (
            dict(self.ring.snapshot(), enabled=True, drift=self.label_drift())
            if self.ring is not None
            else {"enabled": False, "skipped": f"model.task is {self.task} or accuracy.live_ring is 0"}
        )
        return {"shadow": shadow, "live_labels": ring}

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the side threads (each gets ``timeout`` to finish its item; they are daemon threads)."""
        if self.shadow is not None:
            self.shadow.worker.stop(timeout)
        if self.ring is not None:
            self.ring.worker.stop(timeout)
