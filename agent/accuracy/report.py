"""The accuracy report: one engine's results on the spot-labeled set, and drift against the baseline.

``agent.accuracy.check.Evaluation.report`` fills the metrics; ``run_check`` adds the set, the
engine, the time and drift; ``edge-agent check --plot`` adds ``plot``. ``to_json`` is what
``edge-agent check --json`` prints and the daemon publishes (docs/schemas/accuracy-report.json).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from agent.engines.identity import EngineIdentity
from agent.util.records import FLATTEN, record_json


@dataclass
class AccuracyReport:
    task: str  # classification or detection
    classes: List[str]
    matrix_labels: List[str]  # the classes, then 'none' or 'background' where the task has one
    confusion_matrix: List[List[int]]  # rows truth, columns prediction
    # precision, recall, f1, support, recall_ci95, note (tp, fp, fn, ap50, ap50_95); recall and f1 None
    # without support
    per_class: Dict[str, Dict[str, Any]]
    accuracy: float
    macro: Dict[str, Any]  # means over the classes with support (None where none has)
    # the task's own fields: positive_class, binary, top_k_accuracy; match_iou, labeled_boxes, ignored_boxes,
    # conf_threshold
    task_fields: Dict[str, Any] = field(default_factory=dict, metadata=FLATTEN)
    samples: Optional[int] = None
    skipped: Optional[int] = None
    errors: Optional[List[str]] = None  # the first 50
    spot_set: Optional[Dict[str, Any]] = None  # path, format, sha256
    engine: Optional[EngineIdentity] = None
    ts: Optional[str] = None
    drift: Optional[Dict[str, Any]] = None  # agent.accuracy.check.drift_against
    baseline_error: Optional[str] = None
    baseline_saved: Optional[Dict[str, Any]] = None
    duration_s: Optional[float] = None
    plot: Optional[str] = None

    def recalls(self) -> Dict[str, Optional[float]]:
        """Recall of each class (None for a class without support)."""
        return {name: self.per_class[name]["recall"] for name in self.classes}

    def to_json(self) -> Dict[str, Any]:
        return record_json(self)
