"""Metrics from predictions: confusion matrices (detection with a background row and column),
per-class precision / recall / F1, Wilson score intervals, macro averages and per-class AP50.
Pure numpy; equal to scikit-learn's and statsmodels' definitions."""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from agent.model.tasks.detection import box_iou

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def confusion_matrix(truth: Sequence[int], predicted: Sequence[int], classes: int) -> np.ndarray:
    """Rows are the true class, columns the predicted class."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(truth, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def wilson_interval(successes: int, trials: int, z: float = Z95) -> Tuple[Optional[float], Optional[float]]:
    """Wilson score interval for a proportion; (None, None) without trials."""
    if trials <= 0:
        return None, None
    p = successes / trials
    denom = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def per_class(matrix: np.ndarray, labels: Sequence[str]) -> Dict[str, Dict[str, object]]:
    """Precision, recall, F1, support and the recall's Wilson 95% interval for each class
    (a class without predictions or without support scores 0, as scikit-learn's zero_division=0)."""
    out: Dict[str, Dict[str, object]] = {}
    for i, name in enumerate(labels):
        tp = int(matrix[i, i])
        support = int(matrix[i, :].sum())
        predicted = int(matrix[:, i].sum())
        precision, recall = _ratio(tp, predicted), _ratio(tp, support)
        f1 = _ratio(2 * precision * recall, precision + recall)
        lo, hi = wilson_interval(tp, support)
        out[name] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support,
            "recall_ci95": [lo, hi],
        }
    return out


def accuracy(matrix: np.ndarray) -> float:
    return _ratio(float(np.trace(matrix)), float(matrix.sum()))


def macro(per: Dict[str, Dict[str, Any]], names: List[str]) -> Dict[str, float]:
    """Unweighted means over the named classes."""
    return {
        k: float(np.mean([float(per[n][k]) for n in names])) if names else 0.0 for k in ("precision", "recall", "f1")
    }


def detection_confusion(assignments: Iterable[Tuple[np.ndarray, np.ndarray, np.ndarray]], classes: int) -> np.ndarray:
    """(C+1) x (C+1) matrix, background last, from per-image ``(truth_classes, assigned, false_alarms)``.

    ``assigned[i]`` is the class of the detection matched to truth ``i``, or -1 for a miss (counted
    in the background column); ``false_alarms`` holds the classes of unmatched detections (counted
    in the background row). The background-background cell stays 0.
    """
    background = classes
    matrix = np.zeros((classes + 1, classes + 1), dtype=np.int64)
    for truth, assigned, false_alarms in assignments:
        predicted = np.where(np.asarray(assigned) < 0, background, assigned)
        np.add.at(matrix, (np.asarray(truth, dtype=np.int64), predicted.astype(np.int64)), 1)
        np.add.at(matrix, (np.full(len(false_alarms), background), np.asarray(false_alarms, dtype=np.int64)), 1)
    return matrix


def average_precision(scores: Sequence[float], hits: Sequence[bool], positives: int) -> Optional[float]:
    """Area under the precision-recall curve with all-point interpolation (the precision envelope);
    None without positives."""
    if positives <= 0:
        return None
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    hit = np.asarray(hits, dtype=np.float64)[order]
    tp, fp = np.cumsum(hit), np.cumsum(1.0 - hit)
    recall = np.concatenate([[0.0], tp / positives])
    precision = np.concatenate([[1.0], tp / np.maximum(tp + fp, 1e-12)])
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum((recall[1:] - recall[:-1]) * envelope[1:]))


def ap_per_class(
    images: Iterable[Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    classes: int,
    iou_threshold: float = 0.5,
) -> List[Optional[float]]:
    """AP at ``iou_threshold`` per class from per-image ``(truth_boxes, truth_classes, det_boxes,
    det_scores, det_classes)``. Detections of a class are taken best score first; each one hits the
    unmatched labeled box of its class it overlaps most, if that overlap reaches the threshold."""
    scores: List[List[float]] = [[] for _ in range(classes)]
    hits: List[List[bool]] = [[] for _ in range(classes)]
    positives = [0] * classes
    for truth_boxes, truth_classes, det_boxes, det_scores, det_classes in images:
        truth_classes, det_classes = np.asarray(truth_classes), np.asarray(det_classes)
        for c in range(classes):
            truths = np.asarray(truth_boxes).reshape(-1, 4)[truth_classes == c]
            positives[c] += len(truths)
            mine = np.flatnonzero(det_classes == c)
            mine = mine[np.argsort(-np.asarray(det_scores)[mine], kind="stable")]
            iou = box_iou(np.asarray(det_boxes).reshape(-1, 4)[mine], truths)
            taken = np.zeros(len(truths), dtype=bool)
            for row, index in enumerate(mine):
                candidates = np.where(taken, -1.0, iou[row]) if len(truths) else np.zeros(0)
                best = int(candidates.argmax()) if len(candidates) else -1
                hit = best >= 0 and candidates[best] >= iou_threshold
                if hit:
                    taken[best] = True
                scores[c].append(float(det_scores[index]))
                hits[c].append(bool(hit))
    return [average_precision(scores[c], hits[c], positives[c]) for c in range(classes)]
