"""The benchmark report: one batch size's figures (``BatchRun``) and the whole run (``BenchmarkReport``).

``agent.measure.benchmark.run_benchmark`` produces it; the CLI adds ``context``, the daemon adds
``context``, ``engine`` and ``device_sharing`` (and, on the JSON form it publishes, the accuracy
that goes with the speed: docs/schemas/benchmark.json).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional

from agent.engines.identity import EngineIdentity
from agent.util.records import KEEP_NONE, record_json


@dataclass
class BatchRun:
    """One batch size measured over the last (stable) windows."""

    batch: int
    iterations: int
    inferences: int
    duration_s: float
    throughput_ips: float
    latency_ms: Dict[str, float]  # min, mean, p50, p90, p95, p99, max
    cov: Optional[float] = field(metadata=KEEP_NONE)
    stable: bool
    stability: Dict[str, Any]  # the stability verdict: tolerance, each window, reason when unstable
    stages_ms: Dict[str, float]
    window_monotonic: List[float]  # [start, end] of the measured windows, time.monotonic()
    measured_s: float = 0.0
    windows_discarded: int = 0
    power: Optional[Dict[str, Any]] = field(default=None, metadata=KEEP_NONE)
    energy_mj_per_inference: Optional[float] = field(default=None, metadata=KEEP_NONE)
    power_unavailable_reason: Optional[str] = field(default=None, metadata=KEEP_NONE)
    throttling: Optional[Dict[str, Any]] = None  # with a telemetry sampler only

    def to_json(self) -> Dict[str, Any]:
        return record_json(self)


@dataclass
class BenchmarkReport(BatchRun):
    """The first batch size's figures at the top level, then the run's own fields."""

    mode: str = "engine"  # engine or pipeline
    method: Dict[str, Any] = field(default_factory=dict)
    throughput_by_batch: Dict[str, float] = field(default_factory=dict)
    runs: List[BatchRun] = field(default_factory=list)  # every batch size, when there are several
    context: Optional[Dict[str, Any]] = None  # agent.measure.context.result_context
    engine: Optional[EngineIdentity] = None
    device_sharing: Optional[Dict[str, Any]] = None

    @classmethod
    def of_runs(cls, runs: List[BatchRun], mode: str, method: Dict[str, Any]) -> "BenchmarkReport":
        first = {spec.name: getattr(runs[0], spec.name) for spec in fields(BatchRun)}
        return cls(
            **first,
            mode=mode,
            method=method,
            throughput_by_batch={str(r.batch): r.throughput_ips for r in runs},
            runs=runs if len(runs) > 1 else [],
        )
