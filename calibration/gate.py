"""The accuracy gate: a candidate engine against the FP32 reference, as numbers and a verdict.

Pure logic on arrays; running the engines is calibration.evaluate's job. Two kinds of evidence:
per-class recall on the spot-labeled set (a collapse on one class fails, whatever the average
says) and agreement with the reference on held-out calibration frames: for classifiers of raw
outputs (top-1 agreement, cosine similarity, largest absolute difference), for detectors of boxes
per class (mean matched IoU, largest score difference, boxes left unmatched on either side).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from agent.accuracy.metrics import (
    ImageBoxes,
    assign_coco,
    confusion_matrix,
    detection_confusion,
    detection_counts,
    per_class,
)
from agent.config.sections import GateConfig
from agent.model.tasks.detection import Detections, box_iou, match_boxes

NO_CLASS = -1  # a prediction where no class passed its threshold


@dataclass(frozen=True)
class Thresholds:
    max_recall_drop_pp: float = 1.0
    min_top1_agreement: float = 0.99
    min_cosine: float = 0.99
    min_box_iou: float = 0.9
    max_score_diff: float = 0.1
    max_unmatched_fraction: float = 0.05

    @classmethod
    def from_config(cls, gate: GateConfig) -> "Thresholds":
        return cls(
            float(gate.max_recall_drop_pp),
            float(gate.min_top1_agreement),
            float(gate.min_cosine),
            float(gate.min_box_iou),
            float(gate.max_score_diff),
            float(gate.max_unmatched_fraction),
        )


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors; 1 when both are zero, 0 when only one is."""
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norms == 0.0:
        return 1.0 if not a.any() and not b.any() else 0.0
    return float(np.dot(a, b) / norms)


def output_agreement(reference: np.ndarray, candidate: np.ndarray, top1: bool = True) -> Dict[str, Any]:
    """How closely a candidate's outputs follow the reference's, over a batch [N, ...]:

    * ``top1_agreement``: argmax over the last axis agrees (None when ``top1`` is off, for outputs
      that are not class scores);
    * ``cosine``: cosine similarity of all outputs taken as one vector (a frame whose output is
      near zero, like a text map of a photo without text, cannot swing it, as it swings a
      per-frame cosine); ``cosine_min``: the worst single frame, for the report;
    * ``max_abs_diff``: the largest absolute difference.
    """
    if reference.shape != candidate.shape:
        raise ValueError(f"outputs differ in shape: reference {reference.shape}, candidate {candidate.shape}")
    ref = reference.reshape(len(reference), -1).astype(np.float64)
    cand = candidate.reshape(len(candidate), -1).astype(np.float64)
    agreement = None
    if top1:
        agreement = float(
            np.mean(
                reference.reshape(-1, reference.shape[-1]).argmax(axis=1)
                == candidate.reshape(-1, candidate.shape[-1]).argmax(axis=1)
            )
        )
    return {
        "samples": int(len(reference)),
        "top1_agreement": agreement,
        "cosine": _cosine(ref.ravel(), cand.ravel()),
        "cosine_min": min(_cosine(r, c) for r, c in zip(ref, cand)),
        "max_abs_diff": float(np.abs(ref - cand).max()),
    }


def _recalls(truth: Sequence[int], predicted: Sequence[int], labels: Sequence[str]) -> Dict[str, float]:
    """Per-class recall; a prediction of no class counts as a miss (an extra, unlabeled column).
    Classes without samples have no recall and are left out, so they neither fail nor pass the gate
    (as :func:`detection_recalls` leaves out classes without labeled boxes)."""
    classes = len(labels)
    mapped = [classes if p == NO_CLASS else p for p in predicted]
    matrix = confusion_matrix(truth, mapped, classes + 1)
    stats = per_class(matrix, list(labels) + ["(none)"])
    return {name: float(stats[name]["recall"]) for name in labels if stats[name]["support"]}  # type: ignore[arg-type]


def recall_deltas(
    truth: Sequence[int], reference: Sequence[int], candidate: Sequence[int], labels: Sequence[str]
) -> Dict[str, Dict[str, float]]:
    """{class: {reference, candidate, delta_pp}}: the candidate's recall change in percentage points."""
    return _deltas(_recalls(truth, reference, labels), _recalls(truth, candidate, labels))


def _deltas(ref: Dict[str, float], cand: Dict[str, float]) -> Dict[str, Dict[str, float]]:
    return {
        name: {"reference": ref[name], "candidate": cand[name], "delta_pp": round((cand[name] - ref[name]) * 100.0, 6)}
        for name in ref
    }


def detection_recalls(images: Sequence[ImageBoxes], labels: Sequence[str], match_iou: float) -> Dict[str, float]:
    """Per-class recall of labeled boxes at ``match_iou``, matched as ``edge-agent check`` matches
    (agent.accuracy.metrics.assign_coco); classes without labeled boxes are left out."""
    assignments = []
    for image in images:
        assigned, false_alarms = assign_coco(image, len(labels), match_iou)
        regular = ~image.truth_ignore
        assignments.append((image.truth_classes[regular], assigned[regular], false_alarms))
    counts = detection_counts(detection_confusion(assignments, len(labels)))
    return {name: c["tp"] / (c["tp"] + c["fn"]) for name, c in zip(labels, counts) if c["tp"] + c["fn"] > 0}


def detection_recall_deltas(
    reference: Sequence[ImageBoxes], candidate: Sequence[ImageBoxes], labels: Sequence[str], match_iou: float
) -> Dict[str, Dict[str, float]]:
    """{class: {reference, candidate, delta_pp}} of per-class detection recall on the spot-labeled set."""
    return _deltas(detection_recalls(reference, labels, match_iou), detection_recalls(candidate, labels, match_iou))


def box_agreement(
    reference: Sequence[Detections], candidate: Sequence[Detections], labels: Sequence[str], match_iou: float
) -> Dict[str, Dict[str, Any]]:
    """Per class, over frames: the candidate's boxes paired one to one with the reference's (same
    class, IoU >= ``match_iou``, highest IoU first), their mean and lowest IoU, the largest score
    difference of a pair, and the boxes of either side left unmatched."""
    sums: Dict[int, Dict[str, Any]] = {
        c: {"ious": [], "score_diffs": [], "reference_boxes": 0, "candidate_boxes": 0} for c in range(len(labels))
    }
    for ref, cand in zip(reference, candidate):
        pairs = match_boxes(ref.boxes, ref.classes, cand.boxes, cand.classes, match_iou, same_class=True)
        for c, entry in sums.items():
            entry["reference_boxes"] += int(np.count_nonzero(ref.classes == c))
            entry["candidate_boxes"] += int(np.count_nonzero(cand.classes == c))
        for r, d in pairs:
            entry = sums[int(ref.classes[r])]
            entry["ious"].append(float(box_iou(ref.boxes[r], cand.boxes[d])[0, 0]))
            entry["score_diffs"].append(abs(float(ref.scores[r]) - float(cand.scores[d])))
    out: Dict[str, Dict[str, Any]] = {}
    for c, entry in sums.items():
        matched = len(entry["ious"])
        if not entry["reference_boxes"] and not entry["candidate_boxes"]:
            continue
        out[labels[c]] = {
            "reference_boxes": entry["reference_boxes"],
            "candidate_boxes": entry["candidate_boxes"],
            "matched": matched,
            "mean_iou": float(np.mean(entry["ious"])) if matched else None,
            "min_iou": float(np.min(entry["ious"])) if matched else None,
            "max_score_diff": float(np.max(entry["score_diffs"])) if matched else None,
            "unmatched_reference": entry["reference_boxes"] - matched,
            "unmatched_candidate": entry["candidate_boxes"] - matched,
        }
    return out


def _box_reasons(boxes: Dict[str, Dict[str, Any]], limits: Thresholds) -> List[str]:
    reasons = []
    for name, e in boxes.items():
        unmatched = e["unmatched_reference"] + e["unmatched_candidate"]
        fraction = unmatched / max(e["reference_boxes"], 1)
        if fraction > limits.max_unmatched_fraction:
            reasons.append(
                f"class {name!r}: {e['unmatched_reference']} reference and {e['unmatched_candidate']} candidate "
                f"box(es) unmatched of {e['reference_boxes']} ({fraction:.4f} > {limits.max_unmatched_fraction})"
            )
        if e["mean_iou"] is not None and e["mean_iou"] < limits.min_box_iou:
            reasons.append(f"class {name!r}: mean matched IoU {e['mean_iou']:.4f} < {limits.min_box_iou}")
        if e["max_score_diff"] is not None and e["max_score_diff"] > limits.max_score_diff:
            reasons.append(f"class {name!r}: score difference {e['max_score_diff']:.4f} > {limits.max_score_diff}")
    return reasons


def confusion(truth: Sequence[int], predicted: Sequence[int], labels: Sequence[str]) -> List[List[int]]:
    """The confusion matrix as lists, rows = truth, with a last column for 'no class'."""
    classes = len(labels)
    mapped = [classes if p == NO_CLASS else p for p in predicted]
    return confusion_matrix(truth, mapped, classes + 1)[:classes].tolist()


def judge(
    agreement: Optional[Dict[str, Any]],
    recalls: Optional[Dict[str, Dict[str, float]]],
    limits: Thresholds,
    boxes: Optional[Dict[str, Dict[str, Any]]] = None,
) -> List[str]:
    """Every reason the candidate fails (an empty list: it passes). Missing evidence fails too:
    a gate with nothing to compare is no gate."""
    reasons: List[str] = []
    if agreement is None and recalls is None and boxes is None:
        return ["no evidence: neither held-out frames nor a spot-labeled set to compare on"]
    if recalls is not None:
        for name, entry in recalls.items():
            if -entry["delta_pp"] > limits.max_recall_drop_pp:
                reasons.append(
                    f"recall of class {name!r} fell {-entry['delta_pp']:.2f} pp "
                    f"({entry['reference']:.4f} -> {entry['candidate']:.4f}; limit {limits.max_recall_drop_pp} pp)"
                )
    if agreement is not None:
        if agreement["top1_agreement"] is not None and agreement["top1_agreement"] < limits.min_top1_agreement:
            reasons.append(f"top-1 agreement {agreement['top1_agreement']:.4f} < {limits.min_top1_agreement}")
        if agreement["cosine"] < limits.min_cosine:
            reasons.append(f"cosine similarity {agreement['cosine']:.4f} < {limits.min_cosine}")
    if boxes is not None:
        reasons += _box_reasons(boxes, limits)
    return reasons


def worst_recall_delta(recalls: Optional[Dict[str, Dict[str, float]]]) -> float:
    return min((e["delta_pp"] for e in recalls.values()), default=0.0) if recalls else 0.0


def score(
    agreement: Optional[Dict[str, Any]],
    recalls: Optional[Dict[str, Dict[str, float]]],
    boxes: Optional[Dict[str, Dict[str, Any]]] = None,
) -> float:
    """A single 'how close to FP32' figure for ranking failed attempts (higher is closer)."""
    value = worst_recall_delta(recalls) / 100.0
    if agreement is not None:
        value += (agreement["top1_agreement"] or 0.0) + agreement["cosine"]
    for e in (boxes or {}).values():  # per class, averaged: matched share, IoU, score closeness
        value += min(e["matched"] / max(e["reference_boxes"], e["candidate_boxes"], 1), 1.0) / len(boxes or {})
        value += ((e["mean_iou"] or 0.0) - (e["max_score_diff"] or 1.0)) / len(boxes or {})
    return value
