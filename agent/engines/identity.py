"""Which engine a build report describes: the precision it serves, its identity and its label.

Each function takes a build report as the record (agent.engines.report.BuildReport) or as its
JSON form (what the daemon keeps in memory and in its engine state), and answers the same for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Union

from agent.engines.report import BuildReport

AnyReport = Union[BuildReport, Mapping[str, Any]]


def _field(report: AnyReport, name: str) -> Any:
    return getattr(report, name) if isinstance(report, BuildReport) else report.get(name)


def served_precision(report: AnyReport) -> Optional[str]:
    """The precision the engine serves: what was built (``built_precision``: ``best`` may build
    fp16 or fp32), else what was asked (``precision``: a report without a built precision)."""
    built = _field(report, "built_precision")
    return built if built is not None else _field(report, "precision")


def engine_label(report: AnyReport) -> str:
    """'<backend> <precision served>', as logs and the daemon's status line name an engine."""
    return f"{_field(report, 'backend') or '?'} {served_precision(report) or '?'}"


@dataclass(frozen=True)
class EngineIdentity:
    """What names an engine in accuracy and benchmark reports and in baselines."""

    id: Optional[str]  # the engine cache key, or fp32-reference-<model hash> for the FP32 reference
    backend: Optional[str]
    precision: Optional[str]  # the precision served
    model_sha256: Optional[str]  # the source model's

    @classmethod
    def of(cls, report: AnyReport) -> "EngineIdentity":
        """The identity of the engine a build report describes."""
        return cls(
            _field(report, "cache_key"),
            _field(report, "backend"),
            served_precision(report),
            _field(report, "model_sha256"),
        )

    @classmethod
    def fp32_reference(cls, model_sha256: str) -> "EngineIdentity":
        """The FP32 reference: the unmodified model in ONNX Runtime."""
        return cls(f"fp32-reference-{model_sha256[:16]}", "onnxruntime", "fp32", model_sha256)

    def to_json(self) -> Dict[str, Any]:
        return {"id": self.id, "backend": self.backend, "precision": self.precision, "model_sha256": self.model_sha256}
