"""Run engines over the gate's evidence: held-out calibration frames and the spot-labeled set,
preprocessed by agent.model.preprocess exactly as inference does, in batches of the engine's size."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from agent.accuracy.labelsets import load_folders
from agent.backends.base import Engine
from agent.model.info import InputSpec
from agent.model.preprocess import make_batch
from agent.sources.frames import read_image
from calibration.gate import NO_CLASS, Thresholds, judge, output_agreement, recall_deltas

Decode = Callable[[np.ndarray], List[Optional[int]]]  # raw outputs [N, C] -> predicted class or None


@dataclass
class Evidence:
    """What every candidate is judged on, with the FP32 reference's answers."""

    spec: InputSpec
    output: str
    holdout: List[np.ndarray]  # frames (BGR / grey uint8)
    labeled: List[np.ndarray] = field(default_factory=list)
    truth: List[int] = field(default_factory=list)
    labels: List[str] = field(default_factory=list)
    classify: bool = True
    notes: List[str] = field(default_factory=list)
    reference_holdout: Optional[np.ndarray] = None
    reference_predicted: Optional[List[int]] = None


def load_labeled(spot_labels: Optional[str], labels: Sequence[str]) -> Dict[str, Any]:
    """Images and truth from a folder-per-class spot-labeled set; read errors become notes."""
    if not spot_labels:
        return {
            "images": [],
            "truth": [],
            "notes": ["accuracy.spot_labels is not set: per-class recall is not part of the gate"],
        }
    found = load_folders(spot_labels, labels)
    images, truth, notes = [], [], list(found.errors)
    for path, index in found.items:
        image = read_image(path)  # type: ignore[arg-type]
        if image is None:
            notes.append(f"{path}: not a readable image; skipped")
            continue
        images.append(image)
        truth.append(index)
    return {"images": images, "truth": truth, "notes": notes}


def run_outputs(engine: Engine, spec: InputSpec, output: str, frames: Sequence[np.ndarray]) -> np.ndarray:
    """The named output for every frame, in order (short last batch padded, padding dropped)."""
    rows = []
    for start in range(0, len(frames), spec.batch):
        chunk = frames[start : start + spec.batch]
        batch, _ = make_batch(chunk, spec)
        rows.append(engine.infer({spec.name: batch})[output][: len(chunk)])
    return np.concatenate(rows) if rows else np.zeros((0,), dtype=np.float32)


def predicted_classes(decode: Decode, outputs: np.ndarray) -> List[int]:
    return [NO_CLASS if p is None else int(p) for p in decode(outputs)]


def set_reference(evidence: Evidence, engine: Engine, decode: Decode) -> None:
    """Record the FP32 reference's outputs and predictions."""
    evidence.reference_holdout = (
        run_outputs(engine, evidence.spec, evidence.output, evidence.holdout) if evidence.holdout else None
    )
    if evidence.labeled:
        evidence.reference_predicted = predicted_classes(
            decode, run_outputs(engine, evidence.spec, evidence.output, evidence.labeled)
        )


def assess(evidence: Evidence, engine: Engine, decode: Decode, limits: Thresholds) -> Dict[str, Any]:
    """The gate's numbers and verdict for one candidate engine."""
    agreement = recalls = None
    if evidence.reference_holdout is not None:
        outputs = run_outputs(engine, evidence.spec, evidence.output, evidence.holdout)
        agreement = output_agreement(evidence.reference_holdout, outputs, top1=evidence.classify)
    if evidence.reference_predicted is not None:
        predicted = predicted_classes(decode, run_outputs(engine, evidence.spec, evidence.output, evidence.labeled))
        recalls = recall_deltas(evidence.truth, evidence.reference_predicted, predicted, evidence.labels)
    reasons = judge(agreement, recalls, limits)
    return {"passed": not reasons, "reasons": reasons, "outputs": agreement, "per_class_recall": recalls}
