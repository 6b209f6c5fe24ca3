"""The two jobs: ``calibrate`` (collect frames, compute ranges, write the artefacts) and
``build_quantized`` (the gated INT8 search behind ``edge-agent build --precision int8|best``)."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from agent.backends.base import Backend, BuildRequest
from agent.engines import cache_key
from agent.fileio import atomic_move, sha256_file
from agent.pipeline import PreparedModel, make_decoder, prepare_model
from agent.preprocess import make_batch
from agent.progress import Progress
from agent.schema import Node

from .artefacts import batch_size_for, settings_folder, write_artefacts
from .calibrators import QuantizeSettings, quantizable_nodes, quantize_qdq
from .capture import collect
from .datasets import CalibrationSet, current_set
from .evaluate import Evidence, load_labeled, set_reference
from .gate import Thresholds
from .normalize import normalize_file
from .search import SearchResult, Workbench, exclusion_limit, planned_steps, search

log = logging.getLogger(__name__)


def base_settings(cfg: Node, method: Optional[str] = None) -> QuantizeSettings:
    c = cfg.calibration
    return QuantizeSettings(method or c.method, bool(c.per_channel), float(c.percentile))


def calibration_batches(images: Sequence[np.ndarray], model: PreparedModel) -> List[np.ndarray]:
    """Frames -> equal batches through agent.preprocess (the inference path). A model with a fixed
    batch drops the frames that do not fill its last batch (never zero padding: it would skew ranges)."""
    fixed = model.info.inputs[[t.name for t in model.info.inputs].index(model.spec.name)].shape[0]
    size = batch_size_for(len(images), fixed)
    spec = dataclasses.replace(model.spec, batch=size)
    usable = len(images) - len(images) % size
    return [make_batch(list(images[i : i + size]), spec)[0] for i in range(0, usable, size)]


def models_folder(cal_set: CalibrationSet, model: PreparedModel) -> Path:
    return cal_set.folder / "models" / model.sha256[:16]


def normalized_model(cal_set: CalibrationSet, model: PreparedModel) -> Tuple[str, Dict[str, Any]]:
    """The model normalized for quantization, kept next to the calibration set."""
    target = models_folder(cal_set, model) / "normalized.onnx"
    report = normalize_file(model.path, str(target))
    return str(target), report.as_dict()


def calibrate(cfg: Node, source: Optional[str] = None, frames: Optional[int] = None, method: Optional[str] = None) -> Dict[str, Any]:
    """Collect a calibration set (it becomes current) and calibrate the configured model on it."""
    with Progress("calibration frames", frames or cfg.calibration.frames) as progress:
        cal_set = collect(cfg, source, frames, progress)
    model = prepare_model(cfg)
    settings = base_settings(cfg, method)
    normalized, normalization = normalized_model(cal_set, model)
    batches = calibration_batches(cal_set.images(), model)
    folder = models_folder(cal_set, model) / settings_folder(settings)
    with tempfile.TemporaryDirectory(prefix=".quantize-", dir=str(cal_set.folder)) as work:
        qdq = str(Path(work) / "model.qdq.onnx")
        quantize_qdq(normalized, qdq, model.spec.name, batches, settings)
        context = {"calibration_hash": cal_set.calibration_hash, "source_model_sha256": model.sha256, "normalization": normalization}
        paths = write_artefacts(folder, normalized, qdq, settings, model.spec.name, batches, context)
    manifest = cal_set.manifest
    return {
        "calibration_hash": cal_set.calibration_hash,
        "frames": len(manifest["frames"]),
        "frames_seen": manifest["seen"],
        "skipped": manifest["skipped"],
        "source": manifest["source"],
        "method": settings.method,
        "per_channel": settings.per_channel,
        "calibration_set": str(cal_set.folder),
        "manifest": str(cal_set.folder / "manifest.json"),
        "normalized_model": normalized,
        "normalization": normalization,
        **paths,
    }


def quantization_key(cfg: Node) -> Dict[str, Any]:
    """Settings that change what the INT8 search promotes; they extend the engine cache key."""
    return {
        "calibration": {k: cfg.calibration[k] for k in ("method", "percentile", "per_channel", "holdout_fraction")},
        "gate": dict(cfg.gate),
        "spot_labels": cfg.accuracy.spot_labels,
    }


def gather_evidence(cfg: Node, model: PreparedModel, holdout: List[np.ndarray]) -> Evidence:
    classify = cfg.model.task == "classification"
    evidence = Evidence(model.spec, model.output, holdout, labels=list(model.labels), classify=classify)
    if not holdout:
        evidence.notes.append("no held-out frames (calibration.holdout_fraction or too few frames): output agreement is not part of the gate")
    if classify:
        found = load_labeled(cfg.accuracy.spot_labels, model.labels)
        evidence.labeled, evidence.truth = found["images"], found["truth"]
        evidence.notes += found["notes"]
    else:
        evidence.notes.append(f"task {cfg.model.task}: the gate compares raw outputs only (per-class recall needs classification labels)")
    return evidence


def gate_summary(result: SearchResult) -> Dict[str, Any]:
    """The gate block of the build report: the promoted (or best failed) attempt's figures."""
    final = result.chosen or (result.attempts[-1] if result.attempts else None)
    outputs = final.gate["outputs"] if final else None
    recalls = final.gate["per_class_recall"] if final else None
    return {
        "passed": result.chosen is not None,
        "per_class_recall_delta": {k: v["delta_pp"] for k, v in (recalls or {}).items()},
        "per_class_recall": recalls,
        "top1_agreement": outputs["top1_agreement"] if outputs else None,
        "cosine_mean": outputs["cosine_mean"] if outputs else None,
        "max_abs_diff": outputs["max_abs_diff"] if outputs else None,
        "reasons": final.gate["reasons"] if final else ["no attempt was made"],
        "attempts": [a.as_dict() for a in result.attempts],
        "sensitivity": result.sensitivity,
        "notes": result.notes,
    }


def build_quantized(
    cfg: Node,
    backend: Backend,
    precision: str,
    force: bool,
    build_reference: Callable[[PreparedModel], Dict[str, Any]],
    store: Any,
    base_fields: Callable[[PreparedModel, Optional[str]], Dict[str, Any]],
) -> Dict[str, Any]:
    """The INT8 search for ``precision`` int8 or best; returns the build report (``promoted`` says
    whether an engine went into the cache; a failed int8 search promotes nothing)."""
    model = prepare_model(cfg)
    cal_set = current_set(cfg.paths.calibration_dir)
    collected = cal_set is None
    if cal_set is None:
        log.info("no calibration set in %s: collecting one from the configured source", cfg.paths.calibration_dir)
        with Progress("calibration frames", cfg.calibration.frames) as progress:
            cal_set = collect(cfg, None, None, progress)
    fields = base_fields(model, cal_set.calibration_hash)
    fields["quantization"] = quantization_key(cfg)
    key = cache_key(fields)
    report: Dict[str, Any] = {
        "backend": backend.name,
        "backend_version": fields["backend_version"],
        "precision": precision,
        "model_sha256": model.sha256,
        "calibration_hash": cal_set.calibration_hash,
        "calibration_set": str(cal_set.folder),
        "calibration_collected_now": collected,
        "cache_key": key,
        "input_shapes": fields["input_shapes"],
    }
    found = store.lookup(key)
    if found.hit and not force:
        built = found.entry.meta.get("build", {})
        report.update(built.get("report", {}))
        report.update(engine_path=found.entry.engine_path, cache_hit=True, rebuild_reason=None, build_time_s=0.0)
        return report
    started = time.monotonic()
    reference = build_reference(model)
    normalized, normalization = normalized_model(cal_set, model)
    images = cal_set.images()
    calib_idx, hold_idx = cal_set.split(float(cfg.calibration.holdout_fraction))
    batches = calibration_batches([images[i] for i in calib_idx], model)
    evidence = gather_evidence(cfg, model, [images[i] for i in hold_idx])
    decoder = make_decoder(cfg, model)
    decode = (lambda out: [c.predicted for c in decoder.decode(out)]) if evidence.classify else (lambda out: [])
    options = dict(cfg.backend[backend.name])
    with backend.load(reference["engine_path"], options) as ref_engine:
        set_reference(evidence, ref_engine, decode)
    nodes = len(quantizable_nodes(_load(normalized)))
    gate_cfg = cfg.gate
    max_excluded = exclusion_limit(nodes, int(gate_cfg.max_excluded_nodes), float(gate_cfg.max_excluded_fraction))
    workdir = Path(tempfile.mkdtemp(prefix=".search-", dir=str(cal_set.folder)))
    try:
        with Progress("INT8 search", planned_steps(nodes, gate_cfg.mixed_precision, max_excluded)) as progress:
            bench = Workbench(backend, options, model.input_shapes(), normalized, batches, evidence, decode,
                              Thresholds.from_config(gate_cfg), workdir, progress)
            result = search(bench, cfg.calibration.method, base_settings(cfg), bool(gate_cfg.mixed_precision), max_excluded)
        report.update(
            normalization=normalization,
            normalized_model=normalized,
            calibration_frames=sum(len(b) for b in batches),
            holdout_frames=len(hold_idx),
            labeled_images=len(evidence.labeled),
            evidence_notes=evidence.notes,
            reference={"precision": "fp32", "engine_path": reference["engine_path"], "cache_key": reference["cache_key"]},
            gate=gate_summary(result),
        )
        final = result.chosen or _closest(result)
        if final is not None:
            context = {"calibration_hash": cal_set.calibration_hash, "source_model_sha256": model.sha256,
                       "normalization": normalization, "promoted": result.chosen is not None}
            folder = models_folder(cal_set, model) / settings_folder(final.settings)
            measured = calibration_batches(evidence.holdout + evidence.labeled, model) if evidence.holdout or evidence.labeled else []
            where = f"{len(evidence.holdout)} held-out frame(s) and {len(evidence.labeled)} spot-labeled image(s)"
            report["artefacts"] = write_artefacts(folder, normalized, final.qdq_path, final.settings, model.spec.name, batches, context, measured, where)
            report["excluded_nodes"] = list(final.settings.exclude)
            report["method"] = final.settings.method
        if result.chosen is not None:
            chosen = result.chosen
            report.update(built_precision="int8", promoted=True, built_model_sha256=sha256_file(chosen.qdq_path),
                          decision=f"promoted INT8 ({chosen.settings.method}, {len(chosen.settings.exclude)} node(s) kept in float): the gate passed")
            entry = store.put(key, fields, backend.engine_suffix, _adopt(chosen.engine_path, report))
        elif precision == "best":
            fallback, why = fallback_precision(backend, gate_cfg.fallback)
            report.update(built_precision=fallback, promoted=True, excluded_nodes=[],
                          decision=f"requested best: no INT8 candidate passed the gate, so {fallback.upper()} was built{why}")
            request = BuildRequest(model.path, fallback, model.input_shapes(), options)
            entry = store.put(key, fields, backend.engine_suffix, _build_into(backend, request, report))
        else:
            report.update(built_precision=None, promoted=False, engine_path=None, cache_hit=False,
                          decision="not promoted: no INT8 candidate passed the gate; the current engine stays in service")
            report["build_time_s"] = round(time.monotonic() - started, 3)
            return report
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report.update(engine_path=entry.engine_path, cache_hit=False, rebuild_reason="forced" if force else None,
                  build_time_s=round(time.monotonic() - started, 3), engine_sha256=entry.meta["engine_sha256"])
    return report


def fallback_precision(backend: Backend, wanted: str) -> Tuple[str, str]:
    """The configured fallback if the backend builds it, else FP32 with the reason."""
    if wanted in backend.precisions:
        return wanted, ""
    return "fp32", f" (gate.fallback is {wanted}, which the {backend.name} backend does not build)"


def _closest(result: SearchResult) -> Any:
    from .gate import score

    return max(result.attempts, key=lambda a: score(a.gate["outputs"], a.gate["per_class_recall"])) if result.attempts else None


def _adopt(engine_path: str, report: Dict[str, Any]) -> Callable[[str], Dict[str, Any]]:
    """An engine-store build step that moves the already built and gated engine into place."""

    def adopt(tmp_path: str) -> Dict[str, Any]:
        atomic_move(engine_path, tmp_path)
        return {"precision": "int8", "report": _cached_part(report)}

    return adopt


def _build_into(backend: Backend, request: BuildRequest, report: Dict[str, Any]) -> Callable[[str], Dict[str, Any]]:
    def build(tmp_path: str) -> Dict[str, Any]:
        output = backend.build(request, tmp_path)
        report.setdefault("notes", []).extend(output.notes)
        return {"precision": output.precision, "report": _cached_part(report)}

    return build


def _cached_part(report: Dict[str, Any]) -> Dict[str, Any]:
    """What a later cache hit repeats from the build that made the engine."""
    keep = ("built_precision", "promoted", "decision", "gate", "excluded_nodes", "method", "artefacts",
            "normalization", "built_model_sha256", "calibration_frames", "holdout_frames", "labeled_images")
    return {k: report[k] for k in keep if k in report}


def _load(path: str) -> Any:
    import onnx

    return onnx.load(path, load_external_data=False)
