"""The accuracy gate: a candidate engine against the FP32 reference, as numbers and a verdict.

Pure logic on arrays; running the engines is calibration.evaluate's job. Two kinds of evidence:
per-class recall on the spot-labeled set (a collapse on one class fails, whatever the average
says) and agreement of raw outputs on held-out calibration frames (top-1 agreement, cosine
similarity, largest absolute difference).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from agent.accuracy.metrics import confusion_matrix, per_class
from agent.config.sections import GateConfig

NO_CLASS = -1  # a prediction where no class passed its threshold


@dataclass(frozen=True)
class Thresholds:
    max_recall_drop_pp: float = 1.0
    min_top1_agreement: float = 0.99
    min_cosine: float = 0.99

    @classmethod
    def from_config(cls, gate: GateConfig) -> "Thresholds":
        return cls(float(gate.max_recall_drop_pp), float(gate.min_top1_agreement), float(gate.min_cosine))


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
    """Per-class recall; a prediction of no class counts as a miss (an extra, unlabeled column)."""
    classes = len(labels)
    mapped = [classes if p == NO_CLASS else p for p in predicted]
    matrix = confusion_matrix(truth, mapped, classes + 1)
    stats = per_class(matrix, list(labels) + ["(none)"])
    return {name: float(stats[name]["recall"]) for name in labels}  # type: ignore[arg-type]


def recall_deltas(
    truth: Sequence[int], reference: Sequence[int], candidate: Sequence[int], labels: Sequence[str]
) -> Dict[str, Dict[str, float]]:
    """{class: {reference, candidate, delta_pp}}: the candidate's recall change in percentage points."""
    ref, cand = _recalls(truth, reference, labels), _recalls(truth, candidate, labels)
    return {
        name: {"reference": ref[name], "candidate": cand[name], "delta_pp": round((cand[name] - ref[name]) * 100.0, 6)}
        for name in labels
    }


def confusion(truth: Sequence[int], predicted: Sequence[int], labels: Sequence[str]) -> List[List[int]]:
    """The confusion matrix as lists, rows = truth, with a last column for 'no class'."""
    classes = len(labels)
    mapped = [classes if p == NO_CLASS else p for p in predicted]
    return confusion_matrix(truth, mapped, classes + 1)[:classes].tolist()


def judge(
    agreement: Optional[Dict[str, Any]], recalls: Optional[Dict[str, Dict[str, float]]], limits: Thresholds
) -> List[str]:
    """Every reason the candidate fails (an empty list: it passes). Missing evidence fails too:
    a gate with nothing to compare is no gate."""
    reasons: List[str] = []
    if agreement is None and recalls is None:
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
    return reasons


def worst_recall_delta(recalls: Optional[Dict[str, Dict[str, float]]]) -> float:
    return min((e["delta_pp"] for e in recalls.values()), default=0.0) if recalls else 0.0


def score(agreement: Optional[Dict[str, Any]], recalls: Optional[Dict[str, Dict[str, float]]]) -> float:
    """A single 'how close to FP32' figure for ranking failed attempts (higher is closer)."""
    value = worst_recall_delta(recalls) / 100.0
    if agreement is not None:
        value += (agreement["top1_agreement"] or 0.0) + agreement["cosine"]
    return value
