"""The INT8 search: calibrators in turn, then per-layer sensitivity and mixed precision, each
candidate built by the deployment backend and judged by the gate against the FP32 reference.
Every attempt is recorded; the caller decides what a failed search means (int8: not promoted;
best: the configured fallback)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from agent.backends.base import Backend, BuildRequest, HookedEngine, Int8Calibration
from agent.backends.onnxruntime import OnnxRuntimeBackend
from agent.util.cancel import CancelCheck, check
from agent.util.errors import EdgeAgentError
from agent.util.progress import Progress
from calibration.calibrators import (
    METHODS,
    QuantizeSettings,
    needs_memory_cap,
    quantizable_nodes,
    quantize_qdq,
)
from calibration.evaluate import Decode, Evidence, assess, run_outputs
from calibration.gate import Thresholds, output_agreement, score
from calibration.implicit import implicit_calibration

log = logging.getLogger(__name__)


@dataclass
class Workbench:
    """Everything one search needs; ``workdir`` receives each attempt's QDQ model and engine."""

    backend: Backend
    options: Mapping[str, Any]
    input_shapes: Mapping[str, Tuple[int, ...]]
    normalized_model: str
    calibration_batches: List[np.ndarray]
    evidence: Evidence
    decode: Decode
    limits: Thresholds
    workdir: Path
    progress: Optional[Progress] = None
    histogram_batches: Optional[List[np.ndarray]] = None  # entropy / percentile: capped by memory
    tensorrt_calibrates: bool = False  # INT8 candidates calibrated by TensorRT itself (calibration.implicit)
    cancel: Optional[CancelCheck] = None  # tested between candidates, sensitivity runs and evaluation batches

    def batches_for(self, method: str) -> List[np.ndarray]:
        if needs_memory_cap(method) and self.histogram_batches is not None:
            return self.histogram_batches
        return self.calibration_batches


@dataclass
class Attempt:
    number: int
    precision: str
    settings: Optional[QuantizeSettings]  # None for a fallback precision (no quantization)
    qdq_path: str
    engine_path: str
    gate: Dict[str, Any]
    seconds: float

    @property
    def excluded(self) -> Tuple[str, ...]:
        return self.settings.exclude if self.settings else ()

    def as_dict(self) -> Dict[str, Any]:
        described = self.settings.describe() if self.settings else {"excluded_nodes": []}
        return {
            "attempt": self.number,
            "precision": self.precision,
            **described,
            **self.gate,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class SearchResult:
    attempts: List[Attempt] = field(default_factory=list)
    sensitivity: List[Dict[str, Any]] = field(default_factory=list)
    chosen: Optional[Attempt] = None
    notes: List[str] = field(default_factory=list)


def method_order(first: str) -> List[str]:
    """The configured calibrator first, then the others in a fixed order."""
    return [first] + [m for m in METHODS if m != first]


def exclusion_steps(limit: int) -> List[int]:
    """How many of the most sensitive nodes to keep in float, attempt by attempt: 1, 2, 4, ... limit."""
    steps, count = [], 1
    while count < limit:
        steps.append(count)
        count *= 2
    return steps + [limit] if limit > 0 else []


def _judge_build(
    bench: Workbench, model_path: str, precision: str, folder: Path, calibration: Optional[Int8Calibration] = None
) -> Tuple[str, Dict[str, Any]]:
    """Build ``model_path`` at ``precision`` with the backend into ``folder``, load it, judge it."""
    engine_path = str(folder / f"engine{bench.backend.engine_suffix}")
    request = BuildRequest(model_path, precision, bench.input_shapes, bench.options, calibration)
    output = bench.backend.build(request, engine_path)
    check(bench.cancel, "INT8 search")
    with bench.backend.load(engine_path, bench.options) as engine:
        cancellable = HookedEngine(engine, before=lambda: check(bench.cancel, "INT8 search (evaluation)"))
        verdict = assess(bench.evidence, cancellable, bench.decode, bench.limits)
    verdict["built_precision"] = output.precision
    if output.details.get("calibrator"):
        verdict["tensorrt_calibration"] = {**output.details["calibrator"], "notes": output.notes}
    return engine_path, verdict


def try_candidate(bench: Workbench, settings: QuantizeSettings, number: int) -> Attempt:
    """Quantize, build with the backend, load, and judge one INT8 candidate."""
    started = time.monotonic()
    folder = bench.workdir / f"attempt-{number:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    qdq = str(folder / "model.qdq.onnx")
    try:
        quantize_qdq(
            bench.normalized_model, qdq, bench.evidence.spec.name, bench.batches_for(settings.method), settings
        )
    except EdgeAgentError as exc:  # one calibrator failing is one failed attempt, not the end of the search
        verdict: Dict[str, Any] = {
            "passed": False,
            "reasons": [str(exc)],
            "outputs": None,
            "per_class_recall": None,
            "built_precision": None,
        }
        log.warning("INT8 attempt %d (%s): %s", number, settings.method, exc)
        return Attempt(number, "int8", settings, "", "", verdict, time.monotonic() - started)
    calibration = None
    if bench.tensorrt_calibrates:
        batches = bench.calibration_batches
        name = bench.evidence.spec.name
        calibration = implicit_calibration(bench.backend, bench.normalized_model, name, settings, qdq, batches, folder)
    built_from = bench.normalized_model if calibration else qdq
    engine_path, verdict = _judge_build(bench, built_from, "int8", folder, calibration)
    attempt = Attempt(number, "int8", settings, qdq, engine_path, verdict, time.monotonic() - started)
    log.info(
        "INT8 attempt %d (%s, %d node(s) in float): %s",
        number,
        settings.method,
        len(settings.exclude),
        "passed" if verdict["passed"] else "; ".join(verdict["reasons"]),
    )
    return attempt


def try_precision(bench: Workbench, model_path: str, precision: str, number: int) -> Attempt:
    """Build and judge the unquantized model at a fallback precision (FP16)."""
    started = time.monotonic()
    folder = bench.workdir / f"attempt-{number:02d}-{precision}"
    folder.mkdir(parents=True, exist_ok=True)
    engine_path, verdict = _judge_build(bench, model_path, precision, folder)
    log.info(
        "%s fallback attempt %d: %s",
        precision.upper(),
        number,
        "passed" if verdict["passed"] else "; ".join(verdict["reasons"]),
    )
    return Attempt(number, precision, None, "", engine_path, verdict, time.monotonic() - started)


def layer_sensitivity(bench: Workbench, method: str, base: QuantizeSettings) -> List[Dict[str, Any]]:
    """Each quantizable node quantized alone, measured on the CPU with ONNX Runtime against the
    float model: how far the output moves (1 - cosine, then the largest difference)."""
    import onnx

    ort_backend = OnnxRuntimeBackend()
    frames = bench.evidence.labeled or bench.evidence.holdout  # labeled images show the real distribution
    spec, output = bench.evidence.spec, bench.evidence.output
    with ort_backend.load(bench.normalized_model, bench.options) as engine:
        reference = run_outputs(engine, spec, output, frames)
    nodes = quantizable_nodes(onnx.load(bench.normalized_model, load_external_data=False))
    ranked = []
    folder = bench.workdir / "sensitivity"
    folder.mkdir(parents=True, exist_ok=True)
    for position, node in enumerate(nodes):
        check(bench.cancel, "INT8 search (layer sensitivity)")
        path = str(folder / f"node-{position:03d}.onnx")
        quantize_qdq(
            bench.normalized_model,
            path,
            spec.name,
            bench.batches_for(method),
            replace(base, method=method, only=(node,), exclude=()),
        )
        with ort_backend.load(path, bench.options) as engine:
            moved = output_agreement(reference, run_outputs(engine, spec, output, frames), top1=bench.evidence.classify)
        ranked.append({"node": node, "cosine_loss": 1.0 - moved["cosine"], "max_abs_diff": moved["max_abs_diff"]})
        if bench.progress:
            bench.progress.update(1, f"sensitivity {node}")
    ranked.sort(key=lambda r: (-r["cosine_loss"], -r["max_abs_diff"]))
    return ranked


def exclusion_limit(nodes: int, max_nodes: int, max_fraction: float) -> int:
    """How many quantizable nodes mixed precision may keep in float."""
    return max(0, min(max_nodes, int(nodes * max_fraction)))


def _attempt(bench: Workbench, result: SearchResult, settings: QuantizeSettings, what: str) -> bool:
    """Try one candidate, record it (and its progress step); True when it passed and was chosen."""
    check(bench.cancel, "INT8 search")
    attempt = try_candidate(bench, settings, len(result.attempts) + 1)
    result.attempts.append(attempt)
    passed = bool(attempt.gate["passed"])
    if bench.progress:
        bench.progress.update(1, f"{what}: {'passed' if passed else 'failed'}")
    if passed:
        result.chosen = attempt
    return passed


def search(
    bench: Workbench, first_method: str, base: QuantizeSettings, mixed_precision: bool, max_excluded: int
) -> SearchResult:
    """Run attempts until one passes the gate; the result holds them all."""
    result = SearchResult()
    for method in method_order(first_method):
        if _attempt(bench, result, replace(base, method=method), method):
            return result
    if not mixed_precision or max_excluded <= 0:
        result.notes.append(
            "mixed precision is off or allows no layer in float (gate.mixed_precision, gate.max_excluded_*)"
        )
        return result
    nearest = closest(result.attempts).settings
    assert nearest is not None
    method = nearest.method
    result.sensitivity = layer_sensitivity(bench, method, base)
    limit = min(max_excluded, len(result.sensitivity))
    for count in exclusion_steps(limit):
        exclude = tuple(r["node"] for r in result.sensitivity[:count])
        if _attempt(
            bench, result, replace(base, method=method, exclude=exclude), f"{method} with {count} node(s) in float"
        ):
            return result
    result.notes.append(
        f"no INT8 candidate passed with up to {limit} of {len(result.sensitivity)} quantizable node(s) kept in float"
    )
    return result


def closest(attempts: List[Attempt]) -> Attempt:
    """The INT8 attempt nearest to FP32 by the gate's figures (one that produced a model, if any)."""
    int8 = [a for a in attempts if a.settings]
    usable = [a for a in int8 if a.qdq_path] or int8
    return max(usable, key=lambda a: score(a.gate["outputs"], a.gate["per_class_recall"], a.gate.get("boxes")))


def planned_steps(nodes: int, mixed_precision: bool, max_excluded: int) -> int:
    """An upper bound on progress steps: calibrators, sensitivity runs, mixed-precision attempts."""
    limit = max_excluded if mixed_precision else 0
    return len(METHODS) + (nodes + len(exclusion_steps(limit)) if limit else 0)
