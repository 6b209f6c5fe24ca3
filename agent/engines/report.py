"""The build report: what was asked, what was built (or found in the cache), and why.

``agent.build.engine.build_cached`` fills the plain fields; ``calibration.promote.build_quantized``
(the gated INT8 search behind int8 and best) adds the calibration, search and gate fields.
``to_json`` is the form the CLI prints, report files and engine sidecars store and the daemon
keeps; ``from_json`` reads it back. docs/schemas/build.json describes it where it is published.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional

from agent.util.records import KEEP_NONE, record_json


@dataclass
class BuildReport:
    backend: str
    precision: str  # what was asked: fp32, fp16, int8 or best
    backend_version: Optional[str] = field(default=None, metadata=KEEP_NONE)
    model_sha256: Optional[str] = field(default=None, metadata=KEEP_NONE)  # the source model's
    built_model_sha256: Optional[str] = None  # the model the engine was built from (normalized, QDQ)
    calibration_hash: Optional[str] = field(default=None, metadata=KEEP_NONE)
    calibration_set: Optional[str] = None
    calibration_collected_now: Optional[bool] = None
    cache_key: Optional[str] = field(default=None, metadata=KEEP_NONE)
    input_shapes: Optional[Dict[str, List[int]]] = field(default=None, metadata=KEEP_NONE)
    engine_path: Optional[str] = field(default=None, metadata=KEEP_NONE)  # None: nothing was promoted
    cache_hit: bool = field(default=False, metadata=KEEP_NONE)
    rebuild_reason: Optional[str] = field(default=None, metadata=KEEP_NONE)  # absent when nothing was promoted
    build_time_s: float = 0.0
    built_precision: Optional[str] = field(default=None, metadata=KEEP_NONE)  # None: nothing was promoted
    notes: Optional[List[str]] = None
    engine_sha256: Optional[str] = None  # a fresh build's engine file
    # the gated INT8 search (calibration.promote)
    normalization: Optional[Dict[str, Any]] = None
    normalized_model: Optional[str] = None
    calibration_frames: Optional[int] = None
    holdout_frames: Optional[int] = None
    labeled_images: Optional[int] = None
    evidence_notes: Optional[List[str]] = None
    reference: Optional[Dict[str, Any]] = None  # the FP32 reference engine the candidates were judged against
    gate: Optional[Dict[str, Any]] = None  # calibration.promote.gate_summary
    decision: Optional[str] = None
    promoted: Optional[bool] = None
    excluded_nodes: Optional[List[str]] = None
    method: Optional[str] = None
    artefacts: Optional[Dict[str, Any]] = None
    report_path: Optional[str] = None  # the report file of a build that was not a cache hit

    def to_json(self) -> Dict[str, Any]:
        out = record_json(self)
        if self.promoted is False:
            out.pop("rebuild_reason")
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "BuildReport":
        """The record of a report's JSON form (keys that are no field, such as ``written``, are left out)."""
        names = {spec.name for spec in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})
