"""Run engines over the gate's evidence: held-out calibration frames and the spot-labeled set,
preprocessed by agent.model.preprocess exactly as inference does, in batches of the engine's size.
A detector's outputs are decoded by the deployed DetectionDecoder (class map, NMS, frame pixels)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from agent.accuracy.labelsets import BoxLabels, load_folders
from agent.accuracy.metrics import ImageBoxes
from agent.backends.base import Engine
from agent.model.info import InputSpec
from agent.model.preprocess import make_batch
from agent.model.tasks.detection import DetectionDecoder, Detections
from agent.sources.frames import read_image
from calibration.gate import (
    NO_CLASS,
    Thresholds,
    box_agreement,
    detection_recall_deltas,
    judge,
    output_agreement,
    recall_deltas,
)

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
    detector: Optional[DetectionDecoder] = None  # set for detection: boxes, not raw outputs, are compared
    truth_boxes: List[BoxLabels] = field(default_factory=list)  # one per labeled image
    match_iou: float = 0.5
    reference_detections: Optional[List[Detections]] = None  # on the held-out frames
    reference_images: Optional[List[ImageBoxes]] = None  # on the labeled images


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


def run_detections(
    engine: Engine, spec: InputSpec, detector: DetectionDecoder, frames: Sequence[np.ndarray]
) -> List[Detections]:
    """Every frame's detections in frame pixels, through the deployed decoder."""
    found: List[Detections] = []
    for start in range(0, len(frames), spec.batch):
        chunk = frames[start : start + spec.batch]
        batch, boxes = make_batch(chunk, spec)
        found += detector.decode_boxes(engine.infer({spec.name: batch}), len(chunk), boxes)
    return found


def labeled_images(evidence: Evidence, detections: Sequence[Detections]) -> List[ImageBoxes]:
    """The labeled images' truth paired with one engine's detections, for the recall count."""
    out = []
    for image, truth, found in zip(evidence.labeled, evidence.truth_boxes, detections):
        height, width = image.shape[:2]
        boxes = truth.pixel_boxes(width, height)
        out.append(ImageBoxes(boxes, truth.classes, found.boxes, found.scores, found.classes, truth.ignore))
    return out


def predicted_classes(decode: Decode, outputs: np.ndarray) -> List[int]:
    return [NO_CLASS if p is None else int(p) for p in decode(outputs)]


def set_reference(evidence: Evidence, engine: Engine, decode: Decode) -> None:
    """Record the FP32 reference's outputs and predictions (a detector's: its boxes)."""
    if evidence.detector is not None:
        detect = evidence.detector
        evidence.reference_detections = run_detections(engine, evidence.spec, detect, evidence.holdout)
        if evidence.labeled:
            found = run_detections(engine, evidence.spec, detect, evidence.labeled)
            evidence.reference_images = labeled_images(evidence, found)
        return
    evidence.reference_holdout = (
        run_outputs(engine, evidence.spec, evidence.output, evidence.holdout) if evidence.holdout else None
    )
    if evidence.labeled:
        evidence.reference_predicted = predicted_classes(
            decode, run_outputs(engine, evidence.spec, evidence.output, evidence.labeled)
        )


def assess(evidence: Evidence, engine: Engine, decode: Decode, limits: Thresholds) -> Dict[str, Any]:
    """The gate's numbers and verdict for one candidate engine."""
    if evidence.detector is not None:
        return assess_detector(evidence, engine, limits)
    agreement = recalls = None
    if evidence.reference_holdout is not None:
        outputs = run_outputs(engine, evidence.spec, evidence.output, evidence.holdout)
        agreement = output_agreement(evidence.reference_holdout, outputs, top1=evidence.classify)
    if evidence.reference_predicted is not None:
        predicted = predicted_classes(decode, run_outputs(engine, evidence.spec, evidence.output, evidence.labeled))
        recalls = recall_deltas(evidence.truth, evidence.reference_predicted, predicted, evidence.labels)
    reasons = judge(agreement, recalls, limits)
    return {"passed": not reasons, "reasons": reasons, "outputs": agreement, "per_class_recall": recalls}


def assess_detector(evidence: Evidence, engine: Engine, limits: Thresholds) -> Dict[str, Any]:
    """A detector's gate: per-class recall on the spot-labeled set and box agreement on held-out frames."""
    detect, labels = evidence.detector, evidence.labels
    assert detect is not None
    boxes = recalls = None
    if evidence.holdout and evidence.reference_detections is not None:
        found = run_detections(engine, evidence.spec, detect, evidence.holdout)
        boxes = box_agreement(evidence.reference_detections, found, labels, evidence.match_iou)
    if evidence.reference_images is not None:
        images = labeled_images(evidence, run_detections(engine, evidence.spec, detect, evidence.labeled))
        recalls = detection_recall_deltas(evidence.reference_images, images, labels, evidence.match_iou)
    reasons = judge(None, recalls, limits, boxes)
    return {"passed": not reasons, "reasons": reasons, "outputs": None, "per_class_recall": recalls, "boxes": boxes}
