"""Classification outputs -> scores and top-k results (softmax or sigmoid, thresholds)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np


def activate(logits: np.ndarray, activation: str) -> np.ndarray:
    """Scores in [0, 1] from raw outputs of shape [N, C]."""
    values = np.asarray(logits, dtype=np.float64).reshape(len(logits), -1)
    if activation == "softmax":
        shifted = values - values.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        return exp / exp.sum(axis=1, keepdims=True)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-values))
    return values


@dataclass
class Classification:
    """One sample's result: the top-k classes that passed their thresholds, best first."""

    top: List[Dict[str, Any]]  # [{"label": str, "index": int, "score": float}]
    predicted: Optional[int]  # index of the best class that passed, None if none did

    def as_dict(self) -> Dict[str, Any]:
        return {"predicted": self.predicted, "top": self.top}


class ClassificationDecoder:
    def __init__(
        self,
        labels: Sequence[str],
        activation: str = "softmax",
        top_k: int = 1,
        threshold: float = 0.0,
        class_thresholds: Optional[Mapping[str, float]] = None,
    ) -> None:
        self.labels = list(labels)
        self.activation = activation
        self.top_k = top_k
        unknown = sorted(set(class_thresholds or {}) - set(self.labels))
        if unknown:
            raise ValueError(
                f"model.classification.class_thresholds: unknown classes {unknown}; classes are {self.labels}"
            )
        self.thresholds = np.array([(class_thresholds or {}).get(name, threshold) for name in self.labels])

    def scores(self, output: np.ndarray) -> np.ndarray:
        scores = activate(output, self.activation)
        if scores.shape[1] != len(self.labels):
            raise ValueError(f"model output has {scores.shape[1]} classes, labels name {len(self.labels)}")
        return scores

    def decode(self, output: np.ndarray, count: Optional[int] = None) -> List[Classification]:
        """Decode the first ``count`` samples of a batch output [N, C]."""
        scores = self.scores(output)[: count if count is not None else len(output)]
        # One argsort and one comparison for the batch; plain lists per row (numpy scalars are slow).
        orders = np.argsort(-scores, axis=1, kind="stable").tolist()
        passes = (scores >= self.thresholds).tolist()
        results = []
        for order, passing, row in zip(orders, passes, scores.tolist()):
            passed = list(itertools.islice((i for i in order if passing[i]), max(1, self.top_k)))
            top = [{"label": self.labels[i], "index": i, "score": round(row[i], 6)} for i in passed[: self.top_k]]
            results.append(Classification(top, passed[0] if passed else None))
        return results
