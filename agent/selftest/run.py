"""Build each precision of the configured model, compare it with ONNX Runtime FP32, benchmark it,
and time the same engine file with trtexec where there is one.

The comparison runs every image of the spot-labeled set through the candidate and through the
FP32 reference (the unmodified ONNX model in ONNX Runtime on the CPU), preprocessed identically
(calibration.evaluate), and judges it with the accuracy gate's own thresholds (gate.*) and
functions (calibration.gate): top-1 agreement, cosine, max abs diff, per-class recall deltas and
both confusion matrices. An INT8 build the gate refused is a result, not a crash.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from agent import __version__
from agent.accuracy.check import open_reference
from agent.backends.registry import get_backend
from agent.build.engine import build, load_built
from agent.config.sections import Config
from agent.engines.identity import served_precision
from agent.engines.report import BuildReport
from agent.measure.benchmark import BenchSettings, run_benchmark
from agent.model.pipeline import Pipeline
from agent.selftest.trtexec import run_trtexec
from agent.util.errors import EdgeAgentError, InputError
from calibration.evaluate import load_labeled, predicted_classes, run_outputs
from calibration.gate import Thresholds, confusion, judge, output_agreement, recall_deltas
from calibration.promote import class_decoder

PRECISIONS = ("fp32", "fp16", "int8")
FORMAT = "edge-agent/selftest/1"
Say = Callable[[str], None]


@dataclass(frozen=True)
class SelftestSettings:
    precisions: Sequence[str] = PRECISIONS
    bench: BenchSettings = field(default_factory=BenchSettings)
    trtexec: Optional[str] = None  # the binary, or None to skip it


def _latency_ratio(ours: Dict[str, Any], theirs: Dict[str, Any]) -> Optional[float]:
    """Our engine-mode p50 over trtexec's median end-to-end latency (H2D + compute + D2H, as ours)."""
    latency = theirs.get("latency_ms") or {}
    if not latency.get("median"):
        return None
    return round(float(ours["latency_ms"]["p50"]) / float(latency["median"]), 4)


def int8_scales(report: BuildReport) -> Optional[str]:
    """Where the INT8 engine's scales came from (None for another precision): TensorRT's calibrator,
    a calibration cache (named), a QDQ model the search calibrated, or the model's own Q/DQ nodes."""
    if report.built_precision != "int8":
        return None
    passed = [a for a in (report.gate or {}).get("attempts", []) if a.get("passed")]
    if not passed:
        return "the model's own Q/DQ nodes"
    calibration = passed[-1].get("tensorrt_calibration")
    return str(calibration["scales"]) if calibration else "QDQ model calibrated with ONNX Runtime"


def _one(config: Config, precision: str, evidence: Dict[str, Any], settings: SelftestSettings) -> Dict[str, Any]:
    """Build, compare, benchmark and (with trtexec) time one precision."""
    report = build(config, precision=precision)
    entry: Dict[str, Any] = {"precision": precision, "built_precision": served_precision(report)}
    entry["build"] = {
        "backend": report.backend,
        "backend_version": report.backend_version,
        "cache_key": report.cache_key,
        "engine_path": report.engine_path,
        "int8_scales": int8_scales(report),
        "notes": list(report.notes or []),
    }
    if report.promoted is False:
        gate = report.gate or {}
        why = gate.get("reason") or gate.get("decision") or "see the build report"
        entry.update(status="not_promoted", reasons=[f"the accuracy gate refused it: {why}"])
        return entry
    engine, model = load_built(config, report)
    try:
        outputs = run_outputs(engine, model.spec, model.output, evidence["images"])
        predicted = predicted_classes(evidence["decode"], outputs)
        agreement = output_agreement(evidence["reference_outputs"], outputs)
        recalls = recall_deltas(evidence["truth"], evidence["reference_predicted"], predicted, evidence["labels"])
        reasons = judge(agreement, recalls, evidence["thresholds"])
        entry.update(
            status="passed" if not reasons else "failed",
            reasons=reasons,
            agreement=agreement,
            per_class_recall=recalls,
            confusion=confusion(evidence["truth"], predicted, evidence["labels"]),
            benchmark=run_benchmark(engine, model, settings.bench).to_json(),
        )
    finally:
        engine.close()
    if settings.trtexec and report.backend == "tensorrt" and report.engine_path:
        timed = run_trtexec(settings.trtexec, report.engine_path, model.input_shapes())
        timed["ours_p50_over_trtexec_median"] = _latency_ratio(entry["benchmark"], timed["summary"])
        entry["trtexec"] = timed
    return entry


def run_selftest(config: Config, settings: SelftestSettings, say: Say = lambda text: None) -> Dict[str, Any]:
    """The selftest report: one entry per precision, and ``passed`` when every built one passed."""
    if config.model.task != "classification":
        raise InputError(f"model.task {config.model.task}: the selftest compares classifications")
    reference = open_reference(config.model, config.backend)
    try:
        return _run(config, settings, reference.pipeline, say)
    finally:
        reference.pipeline.engine.close()


def _run(config: Config, settings: SelftestSettings, reference: Pipeline, say: Say) -> Dict[str, Any]:
    model = reference.model
    found = load_labeled(config.accuracy.spot_labels, model.labels)
    if not found["images"]:
        raise InputError("accuracy.spot_labels: the selftest needs a labeled set with readable images")
    decode = class_decoder(config.model, model)
    reference_outputs = run_outputs(reference.engine, model.spec, model.output, found["images"])
    evidence = {
        "images": found["images"],
        "truth": found["truth"],
        "labels": model.labels,
        "decode": decode,
        "reference_outputs": reference_outputs,
        "reference_predicted": predicted_classes(decode, reference_outputs),
        "thresholds": Thresholds.from_config(config.gate),
    }
    backend = get_backend(config.backend.name)
    results: List[Dict[str, Any]] = []
    for precision in settings.precisions:
        if precision not in backend.precisions:
            reason = f"the {backend.name} backend does not build {precision}"
            results.append({"precision": precision, "status": "skipped", "reasons": [reason]})
            continue
        say(f"selftest: {precision}: build, compare with ONNX Runtime FP32 on {len(found['images'])} images, bench")
        try:
            results.append(_one(config, precision, evidence, settings))
        except EdgeAgentError as exc:
            results.append({"precision": precision, "status": "error", "reasons": [str(exc)]})
    return {
        "format": FORMAT,
        "edge_agent": __version__,
        "time": time.time(),
        "host": platform.node(),
        "backend": backend.name,
        "model_sha256": model.sha256,
        "labeled_images": len(found["images"]),
        "notes": found["notes"],
        "reference_confusion": confusion(found["truth"], evidence["reference_predicted"], model.labels),
        "labels": list(model.labels),
        "results": results,
        "passed": all(r["status"] in ("passed", "skipped") for r in results)
        and any(r["status"] == "passed" for r in results),
    }
