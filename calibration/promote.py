"""The gated build behind ``edge-agent build --precision int8|best``: search for an INT8 engine
that passes the gate; promote it into the engine cache, or (best) fall back to gate.fallback,
itself gated, or (int8) promote nothing. The returned report says what was asked, what was
built, and why; every attempt is in it."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from agent.accuracy.check import load_spot_set
from agent.backends.base import Backend
from agent.config.sections import AccuracyConfig, CalibrationConfig, Config, GateConfig, ModelConfig
from agent.engines.report import BuildReport
from agent.engines.store import cache_key
from agent.model.pipeline import PreparedModel, make_decoder, prepare_model
from agent.util.cancel import CancelCheck, cancelling, check
from agent.util.errors import InputError
from agent.util.fileio import atomic_move, sha256_file
from agent.util.progress import Listener, Progress
from calibration.artefacts import settings_folder, write_artefacts
from calibration.calibrators import quantizable_nodes
from calibration.collect import collect
from calibration.datasets import CalibrationSet, current_set
from calibration.evaluate import Decode, Evidence, load_labeled, set_reference
from calibration.gate import Thresholds
from calibration.implicit import CACHE_FILE as TENSORRT_CACHE
from calibration.implicit import route_notes, tensorrt_calibrates
from calibration.search import (
    Attempt,
    SearchResult,
    Workbench,
    closest,
    exclusion_limit,
    planned_steps,
    search,
    try_precision,
)
from calibration.workflow import (
    base_settings,
    calibration_batches,
    frames_note,
    histogram_batches,
    models_folder,
    normalized_model,
)

log = logging.getLogger(__name__)
CACHED_FIELDS = (
    "built_precision",
    "promoted",
    "decision",
    "gate",
    "excluded_nodes",
    "method",
    "artefacts",
    "normalization",
    "built_model_sha256",
    "calibration_frames",
    "holdout_frames",
    "labeled_images",
    "notes",
)


def quantization_key(c: CalibrationConfig, gate: GateConfig, spot_labels: Optional[str]) -> Dict[str, Any]:
    """Settings that change what the search promotes; they extend the engine cache key."""
    return {
        "calibration": {k: getattr(c, k) for k in ("method", "percentile", "per_channel", "holdout_fraction")},
        "gate": dataclasses.asdict(gate),
        "spot_labels": spot_labels,
    }


def gather_evidence(
    model_cfg: ModelConfig, accuracy: AccuracyConfig, model: PreparedModel, holdout: List[np.ndarray]
) -> Evidence:
    """What the gate judges on: the held-out frames, and the spot-labeled set (classification:
    labeled images; detection: labeled boxes, the deployed decoder and model.detection.match_iou).
    A detection model whose outputs no decoder reads is judged on raw outputs, with a note."""
    classify = model_cfg.task == "classification"
    evidence = Evidence(model.spec, model.output, holdout, labels=list(model.labels), classify=classify)
    if not holdout:
        evidence.notes.append(
            "no held-out frames (calibration.holdout_fraction or too few frames): agreement with FP32 is not part of "
            "the gate"
        )
    if classify:
        found = load_labeled(accuracy.spot_labels, model.labels)
        evidence.labeled, evidence.truth = found["images"], found["truth"]
        evidence.notes += found["notes"]
        return evidence
    try:
        detector = make_decoder(model_cfg, model)
    except InputError as exc:  # outputs no box format reads (a text or probability map): raw outputs only
        evidence.notes.append(f"{exc}: the gate compares raw outputs only (no boxes to compare)")
        return evidence
    evidence.detector, evidence.labels = detector, list(detector.labels)
    evidence.match_iou = float(model_cfg.detection.match_iou)
    if not accuracy.spot_labels:
        evidence.notes.append("accuracy.spot_labels is not set: per-class recall is not part of the gate")
        return evidence
    spot = load_spot_set(accuracy, model_cfg.task, evidence.labels)
    evidence.labeled = [frame.image for frame in spot.frames]
    evidence.truth_boxes = [sample.truth for sample in spot.samples]
    evidence.notes += list(spot.labeled.errors)
    return evidence


def class_decoder(model_cfg: ModelConfig, model: PreparedModel) -> Decode:
    """Raw outputs -> predicted class index (None where no class passed its threshold)."""
    decoder = make_decoder(model_cfg, model)
    return lambda outputs: [c.predicted for c in decoder.decode(outputs)]


def gate_summary(result: SearchResult, promoted: Optional[Attempt], built: Optional[str]) -> Dict[str, Any]:
    """The report's gate block: ``passed`` is the promoted engine's verdict (an FP32 fallback is the
    reference itself); ``int8_passed`` whether any INT8 candidate passed; the figures are those of
    the promoted attempt, else of the INT8 attempt closest to FP32."""
    shown = promoted or (closest(result.attempts) if any(a.settings for a in result.attempts) else None)
    outputs = shown.gate["outputs"] if shown else None
    recalls = shown.gate["per_class_recall"] if shown else None
    return {
        "passed": promoted is not None or built == "fp32",
        "int8_passed": result.chosen is not None,
        "per_class_recall_delta": {k: v["delta_pp"] for k, v in (recalls or {}).items()},
        "per_class_recall": recalls,
        "top1_agreement": outputs["top1_agreement"] if outputs else None,
        "cosine": outputs["cosine"] if outputs else None,
        "max_abs_diff": outputs["max_abs_diff"] if outputs else None,
        "boxes": shown.gate.get("boxes") if shown else None,
        "reasons": shown.gate["reasons"] if shown else [],
        "attempts": [a.as_dict() for a in result.attempts],
        "sensitivity": result.sensitivity,
        "notes": result.notes,
    }


def fallback_precision(backend: Backend, wanted: str) -> Tuple[str, str]:
    """The configured fallback if the backend builds it, else FP32 with the reason."""
    if wanted in backend.precisions:
        return wanted, ""
    return "fp32", f" (gate.fallback is {wanted}, which the {backend.name} backend does not build)"


def _decide(
    bench: Workbench, result: SearchResult, precision: str, fallback: str, model: PreparedModel
) -> Tuple[Optional[Attempt], Optional[str], str]:
    """(promoted attempt or None, built precision or None, decision sentence)."""
    chosen = result.chosen
    if chosen is not None:
        assert chosen.settings is not None
        return (
            chosen,
            "int8",
            f"promoted INT8 ({chosen.settings.method}, {len(chosen.excluded)} node(s) kept in float): the gate passed",
        )
    if precision != "best":
        return None, None, "not promoted: no INT8 candidate passed the gate; the engine in service stays"
    wanted, why = fallback_precision(bench.backend, fallback)
    if wanted == "fp16":
        attempt = try_precision(bench, model.path, "fp16", len(result.attempts) + 1)
        result.attempts.append(attempt)
        if attempt.gate["passed"]:
            return attempt, "fp16", "requested best: no INT8 candidate passed the gate; FP16 was built and passed it"
        why = " (the FP16 engine failed the gate too)"
    return None, "fp32", f"requested best: no INT8 candidate passed the gate, so FP32 was built{why}"


def _store_entry(
    store: Any,
    key: str,
    fields: Dict[str, Any],
    backend: Backend,
    source: str,
    report: BuildReport,
    keep: Sequence[str] = (),
) -> Any:
    """Move (or, for the FP32 reference, copy) a built engine into the cache under ``key``."""

    def place(tmp_path: str) -> Dict[str, Any]:
        if report.built_precision == "fp32":
            shutil.copyfile(source, tmp_path)
        else:
            atomic_move(source, tmp_path)
        cached = {k: v for k, v in report.to_json().items() if k in CACHED_FIELDS}
        return {"precision": report.built_precision, "report": cached}

    return store.put(key, fields, backend.engine_suffix, place, keep=keep)


def build_quantized(
    config: Config,
    backend: Backend,
    precision: str,
    force: bool,
    build_reference: Callable[[PreparedModel], BuildReport],
    store: Any,
    base_fields: Callable[[PreparedModel, Optional[str]], Dict[str, Any]],
    listener: Optional[Listener] = None,
    keep: Sequence[str] = (),
    cancel: Optional[CancelCheck] = None,
) -> BuildReport:
    """The gated build for ``precision`` int8 or best; returns the build report (``promoted``).
    ``keep``: cache keys that storing the promoted engine must not evict. ``cancel``: tested at every
    progress step (calibration frames, search steps), between candidates and evaluation batches;
    agent.util.cancel.Cancelled ends the build, its working folder removed. Takes the whole
    configuration: model, calibration, source, paths, gate, accuracy and backend all play a part."""
    listener = cancelling(listener, cancel)
    model = prepare_model(config.model)
    cal_set, collected = _calibration_set(config, listener)
    fields = base_fields(model, cal_set.calibration_hash)
    fields["quantization"] = quantization_key(config.calibration, config.gate, config.accuracy.spot_labels)
    key = cache_key(fields)
    report = BuildReport(
        backend=backend.name,
        backend_version=fields["backend_version"],
        precision=precision,
        model_sha256=model.sha256,
        calibration_hash=cal_set.calibration_hash,
        calibration_set=str(cal_set.folder),
        calibration_collected_now=collected,
        cache_key=key,
        input_shapes=fields["input_shapes"],
    )
    found = store.lookup(key)
    if found.hit and not force:
        cached = found.entry.meta.get("build", {}).get("report", {})
        report = replace(report, **{k: v for k, v in cached.items() if k in CACHED_FIELDS})
        report.engine_path, report.cache_hit = found.entry.engine_path, True
        return report
    started = time.monotonic()
    reference = build_reference(model)
    check(cancel, "INT8 search")
    workdir = Path(tempfile.mkdtemp(prefix=".search-", dir=str(cal_set.folder)))
    try:
        bench, batches = _workbench(config, backend, model, cal_set, reference, workdir, report)
        bench.cancel = cancel
        result = _run_search(config.gate, config.calibration, bench, listener)
        promoted, built, decision = _decide(bench, result, precision, config.gate.fallback, model)
        report.gate = gate_summary(result, promoted, built)
        report.built_precision, report.decision, report.promoted = built, decision, built is not None
        report.excluded_nodes = list(promoted.excluded) if promoted else []
        _write_artefacts(bench, result, cal_set, model, batches, report)
        if built is None:
            report.build_time_s = round(time.monotonic() - started, 3)
            return report
        source = promoted.engine_path if promoted else str(reference.engine_path)
        if promoted is not None and promoted.qdq_path:
            report.built_model_sha256 = sha256_file(promoted.qdq_path)
        entry = _store_entry(store, key, fields, backend, source, report, keep)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report.engine_path = entry.engine_path
    report.rebuild_reason = "forced" if force else None
    report.build_time_s = round(time.monotonic() - started, 3)
    report.engine_sha256 = entry.meta["engine_sha256"]
    return report


def _calibration_set(config: Config, listener: Optional[Listener]) -> Tuple[CalibrationSet, bool]:
    """The current calibration set, collected from the configured source when there is none."""
    folder = config.paths.calibration_dir
    found = current_set(folder)
    if found is not None:
        return found, False
    log.info("no calibration set in %s: collecting one from the configured source", folder)
    with Progress("calibration frames", config.calibration.frames, listener=listener) as progress:
        return collect(config.calibration, config.source, folder, None, None, progress), True


def _workbench(
    config: Config,
    backend: Backend,
    model: PreparedModel,
    cal_set: CalibrationSet,
    reference: BuildReport,
    workdir: Path,
    report: BuildReport,
) -> Tuple[Workbench, List[np.ndarray]]:
    """Normalize the model, split the calibration set, run the FP32 reference over the evidence."""
    normalized, normalization = normalized_model(cal_set, model)
    images = cal_set.images()
    calib_idx, hold_idx = cal_set.split(float(config.calibration.holdout_fraction))
    batches = calibration_batches([images[i] for i in calib_idx], model)
    evidence = gather_evidence(config.model, config.accuracy, model, [images[i] for i in hold_idx])
    decode = class_decoder(config.model, model) if evidence.classify else (lambda outputs: [])
    options = config.backend.options(backend.name)
    with backend.load(str(reference.engine_path), options) as engine:
        set_reference(evidence, engine, decode)
    report.normalization, report.normalized_model = normalization, normalized
    report.calibration_frames, report.holdout_frames = sum(len(b) for b in batches), len(hold_idx)
    report.labeled_images, report.evidence_notes = len(evidence.labeled), evidence.notes
    report.reference = {"precision": "fp32", "engine_path": reference.engine_path, "cache_key": reference.cache_key}
    bench = Workbench(
        backend,
        options,
        model.input_shapes(),
        normalized,
        batches,
        evidence,
        decode,
        Thresholds.from_config(config.gate),
        workdir,
        histogram_batches=histogram_batches(config.calibration, normalized, model, batches),
        tensorrt_calibrates=tensorrt_calibrates(backend, options),
    )
    report.notes = frames_note(bench.histogram_batches or batches, batches) + route_notes(backend, options)
    return bench, batches


def _run_search(
    gate: GateConfig, calibration: CalibrationConfig, bench: Workbench, listener: Optional[Listener]
) -> SearchResult:
    import onnx

    nodes = len(quantizable_nodes(onnx.load(bench.normalized_model, load_external_data=False)))
    limit = exclusion_limit(nodes, int(gate.max_excluded_nodes), float(gate.max_excluded_fraction))
    with Progress("INT8 search", planned_steps(nodes, gate.mixed_precision, limit), listener=listener) as progress:
        bench.progress = progress
        return search(
            bench,
            calibration.method,
            base_settings(calibration, bench.backend.name),
            bool(gate.mixed_precision),
            limit,
        )


def _write_artefacts(
    bench: Workbench,
    result: SearchResult,
    cal_set: CalibrationSet,
    model: PreparedModel,
    batches: List[np.ndarray],
    report: BuildReport,
) -> None:
    """Calibration artefacts of the promoted INT8 attempt, else of the one closest to FP32."""
    int8 = [a for a in result.attempts if a.settings and a.qdq_path]
    if not int8:
        return
    final = result.chosen or closest(int8)
    assert final.settings is not None
    evidence = bench.evidence
    frames = evidence.holdout + evidence.labeled
    measured = calibration_batches(frames, model) if frames else []
    where = f"{len(evidence.holdout)} held-out frame(s) and {len(evidence.labeled)} spot-labeled image(s)"
    context = {
        "calibration_hash": cal_set.calibration_hash,
        "source_model_sha256": model.sha256,
        "normalization": report.normalization,
        "promoted": result.chosen is not None,
    }
    folder = models_folder(cal_set, model) / settings_folder(final.settings)
    report.artefacts = write_artefacts(
        folder,
        bench.normalized_model,
        final.qdq_path,
        final.settings,
        model.spec.name,
        batches,
        context,
        measured,
        where,
    )
    report.method = final.settings.method
    written = Path(final.engine_path).parent / TENSORRT_CACHE if final.engine_path else None
    if written is not None and written.is_file():  # the cache TensorRT's own calibrator wrote
        kept = folder / TENSORRT_CACHE
        shutil.copyfile(written, kept)
        report.artefacts["tensorrt_calibrator_cache"] = str(kept)
