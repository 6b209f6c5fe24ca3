"""Classification metrics from predictions: confusion matrix, per-class precision / recall / F1,
and Wilson score intervals. Pure numpy; equal to scikit-learn's and statsmodels' definitions."""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

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


def macro(per: Dict[str, Dict[str, object]], names: List[str]) -> Dict[str, float]:
    """Unweighted means over the named classes."""
    return {k: float(np.mean([float(per[n][k]) for n in names])) if names else 0.0 for k in ("precision", "recall", "f1")}  # type: ignore[arg-type]
