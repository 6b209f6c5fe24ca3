"""Accuracy on the spot-labeled set, and drift against the stored baseline.

``run_check`` loads the set, infers every image through ``agent.model.pipeline.Pipeline`` (the same
path live frames take), computes the confusion matrix and per-class metrics, and compares the
per-sample outcomes with the newest baseline. ``record_baseline`` is what the promotion path
calls: it stores the promoted engine's and the FP32 reference's results as the new baseline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from agent.accuracy import baselines, drift
from agent.accuracy.labelsets import AnySet, BoxLabels, DetectionSet, detect_format, load_set
from agent.accuracy.metrics import (
    ImageBoxes,
    accuracy,
    assign_coco,
    coco_ap,
    confusion_matrix,
    detection_confusion,
    detection_counts,
    macro,
    per_class,
)
from agent.accuracy.report import AccuracyReport
from agent.backends.registry import get_backend
from agent.config.sections import (
    AccuracyConfig,
    BackendConfig,
    ClassificationConfig,
    Config,
    DetectionConfig,
    ModelConfig,
)
from agent.engines.identity import EngineIdentity
from agent.model.pipeline import Pipeline, make_decoder, prepare_model
from agent.sources.frames import Frame, read_image
from agent.util.errors import InputError
from agent.util.fileio import canonical_json, sha256_bytes, sha256_file

NO_PREDICTION = "none"  # classification column for samples no class passed its threshold
BACKGROUND = "background"  # detection row (false alarms) and column (misses)
MAX_ERRORS_LISTED = 50
CHUNK = 64  # images decoded and inferred at a time


@dataclass
class EngineRun:
    """A pipeline and what identifies the engine behind it (for baselines and reports)."""

    pipeline: Pipeline
    identity: EngineIdentity

    @property
    def labels(self) -> List[str]:
        return list(self.pipeline.decoder.labels)


def open_reference(model_cfg: ModelConfig, backend_cfg: BackendConfig, threads: int = 0) -> EngineRun:
    """The FP32 reference: the original ONNX model in ONNX Runtime on the CPU (``threads`` > 0
    caps its intra-op threads, as the shadow evaluator does to leave the cores to inference)."""
    model = prepare_model(model_cfg)
    options = dict(backend_cfg.options("onnxruntime"), providers=["CPUExecutionProvider"])
    if threads:
        options.update(intra_op_threads=threads, inter_op_threads=1)
    engine = get_backend("onnxruntime").load(model.path, options)
    identity = EngineIdentity.fp32_reference(model.sha256)
    return EngineRun(Pipeline(engine, model, make_decoder(model_cfg, model)), identity)


def is_reference(run: EngineRun) -> bool:
    """An FP32 ONNX Runtime engine of the unmodified model gives the reference's answers itself."""
    return (
        run.identity.backend == "onnxruntime"
        and run.identity.precision == "fp32"
        and run.identity.model_sha256 == run.pipeline.model.sha256
    )


@dataclass
class Sample:
    key: str  # the sample's id: its path relative to the set
    path: str
    truth: Any  # class index (classification) or BoxLabels (detection)


def list_samples(labeled: AnySet) -> List[Sample]:
    if isinstance(labeled, DetectionSet):
        return [Sample(labeled.sample_id(item.path), item.path, item) for item in labeled.items]
    return [Sample(labeled.sample_id(path), path, index) for path, index in labeled.items]


def set_hash(samples: Sequence[Sample]) -> str:
    """sha256 over each sample's id, image content and truth: changes when any of them does."""

    def truth_of(s: Sample) -> Any:
        if isinstance(s.truth, BoxLabels):
            ignored = [s.truth.ignore.tolist()] if s.truth.ignore.any() else []
            return [np.round(s.truth.boxes, 6).tolist(), s.truth.classes.tolist(), *ignored]
        return int(s.truth)

    return sha256_bytes(canonical_json([[s.key, sha256_file(s.path), truth_of(s)] for s in samples]).encode())


def read_frames(labeled: AnySet, samples: Sequence[Sample]) -> Tuple[List[Sample], List[Frame]]:
    """Readable samples and their frames; an unreadable image is skipped and counted."""
    kept: List[Sample] = []
    frames: List[Frame] = []
    for sample in samples:
        image = read_image(Path(sample.path))
        if image is None:
            labeled.skip(f"{sample.path}: not a readable image; skipped")
            continue
        kept.append(sample)
        frames.append(Frame(image, len(frames), 0.0, sample.path))
    return kept, frames


@dataclass
class Evaluation:
    """One engine's results on the set: the matrix, per-class metrics and per-sample outcomes."""

    task: str
    labels: List[str]
    matrix_labels: List[str]
    matrix: np.ndarray
    outcomes: Dict[str, Tuple[str, bool]]  # sample (or labeled box) key -> (true class, correct)
    extra: Dict[str, Any] = field(default_factory=dict)
    ap: Optional[List[Optional[List[float]]]] = None  # detection: per class the AP at IoU .50:.05:.95

    def report(self) -> AccuracyReport:
        """The metrics part of the accuracy report."""
        per = per_class(self.matrix, self.labels)
        averages: Dict[str, Any] = macro(per, self.labels)
        if self.ap is not None:
            for name, counts, ap in zip(self.labels, detection_counts(self.matrix), self.ap):
                per[name].update(counts, ap50=None if ap is None else ap[0], ap50_95=_mean(ap))
            known = [ap for ap in self.ap if ap is not None]  # COCO's mAP: over the classes with labeled boxes
            averages.update(ap50=_mean([ap[0] for ap in known]), ap50_95=_mean([float(np.mean(ap)) for ap in known]))
        return AccuracyReport(
            task=self.task,
            classes=self.labels,
            matrix_labels=self.matrix_labels,
            confusion_matrix=self.matrix.tolist(),
            per_class=per,
            accuracy=accuracy(self.matrix),
            macro=averages,
            task_fields=self.extra,
        )


def _mean(values: Optional[Sequence[float]]) -> Optional[float]:
    return float(np.mean(values)) if values else None


def _infer(pipeline: Pipeline, frames: Sequence[Frame]) -> List[Dict[str, Any]]:
    results: List[Dict[str, Any]] = []
    for start in range(0, len(frames), CHUNK):
        results.extend(pipeline.infer_frames(frames[start : start + CHUNK]))
    return results


def _positive_index(positive_class: Optional[str], labels: Sequence[str]) -> Optional[int]:
    if positive_class is None:
        return None
    if positive_class not in labels or len(labels) != 2:
        raise InputError(
            f"model.classification.positive_class: {positive_class!r} must be one of exactly two classes, got "
            f"{list(labels)}"
        )
    return list(labels).index(positive_class)


def evaluate_classification(
    c: ClassificationConfig, run: EngineRun, samples: Sequence[Sample], frames: Sequence[Frame]
) -> Evaluation:
    """Top-1 predictions against the truth. Binary tasks (model.classification.positive_class)
    predict the positive class only when it is the decoder's answer; other tasks whose thresholds
    can reject every class get a 'none' column for those samples."""
    labels = run.labels
    results = _infer(run.pipeline, frames)
    truth = [int(s.truth) for s in samples]
    predicted = [r["predicted"] for r in results]
    extra: Dict[str, Any] = {}
    matrix_labels = list(labels)
    positive = _positive_index(c.positive_class, labels)
    if positive is not None:
        predicted = [positive if p == positive else 1 - positive for p in predicted]
    elif c.threshold > 0 or any(v > 0 for v in c.class_thresholds.values()):
        matrix_labels.append(NO_PREDICTION)
        predicted = [len(labels) if p is None else p for p in predicted]
    matrix = confusion_matrix(truth, predicted, len(matrix_labels))
    if positive is not None:
        n = 1 - positive
        extra["positive_class"] = c.positive_class
        extra["binary"] = {
            "tp": int(matrix[positive, positive]),
            "fp": int(matrix[n, positive]),
            "fn": int(matrix[positive, n]),
            "tn": int(matrix[n, n]),
        }
    if c.top_k > 1:
        hits = sum(1 for t, r in zip(truth, results) if t in [entry["index"] for entry in r["top"]])
        extra["top_k_accuracy"] = {"k": c.top_k, "accuracy": hits / len(truth) if truth else 0.0}
    outcomes = {s.key: (labels[t], p == t) for s, t, p in zip(samples, truth, predicted)}
    return Evaluation("classification", labels, matrix_labels, matrix, outcomes, extra)


def evaluate_detection(
    det: DetectionConfig, run: EngineRun, samples: Sequence[Sample], frames: Sequence[Frame]
) -> Evaluation:
    """COCO-style matching (agent.accuracy.metrics): the confusion matrix with background, per-class
    counts and recall per labeled box at model.detection.match_iou, AP at IoU .50:.05:.95. Ignored
    labeled boxes (crowd, difficult) count neither way, nor do the detections they take."""
    labels = run.labels
    match_iou = det.match_iou
    results = _infer(run.pipeline, frames)
    assignments, images, outcomes = [], [], {}
    for sample, frame, result in zip(samples, frames, results):
        height, width = frame.image.shape[:2]
        dets = result["detections"]
        image = ImageBoxes(
            sample.truth.pixel_boxes(width, height),
            sample.truth.classes,
            np.asarray([d["box"] for d in dets], dtype=np.float64),
            np.asarray([d["score"] for d in dets], dtype=np.float64),
            np.asarray([d["index"] for d in dets], dtype=np.int64),
            sample.truth.ignore,
        )
        assigned, false_alarms = assign_coco(image, len(labels), match_iou)
        regular = ~image.truth_ignore
        assignments.append((image.truth_classes[regular], assigned[regular], false_alarms))
        images.append(image)
        for i in np.flatnonzero(regular).tolist():
            outcomes[f"{sample.key}#{i}"] = (
                labels[image.truth_classes[i]],
                bool(assigned[i] == image.truth_classes[i]),
            )
    matrix = detection_confusion(assignments, len(labels))
    ignored = int(sum(np.count_nonzero(image.truth_ignore) for image in images))
    extra = {
        "match_iou": match_iou,
        "labeled_boxes": len(outcomes),
        "ignored_boxes": ignored,
        "conf_threshold": det.conf_threshold,
    }
    return Evaluation("detection", labels, labels + [BACKGROUND], matrix, outcomes, extra, coco_ap(images, len(labels)))


def evaluate(model_cfg: ModelConfig, run: EngineRun, samples: Sequence[Sample], frames: Sequence[Frame]) -> Evaluation:
    if model_cfg.task == "detection":
        return evaluate_detection(model_cfg.detection, run, samples, frames)
    return evaluate_classification(model_cfg.classification, run, samples, frames)


@dataclass
class SpotSet:
    """The loaded set, its readable samples and frames, and its identity."""

    labeled: AnySet
    samples: List[Sample]
    frames: List[Frame]
    info: Dict[str, Any]


def load_spot_set(
    accuracy: AccuracyConfig, task: str, labels: Sequence[str], path: Optional[str] = None, fmt: Optional[str] = None
) -> SpotSet:
    """The spot-labeled set (``path`` and ``fmt`` override accuracy.spot_labels and accuracy.format) for ``task``."""
    where = path or accuracy.spot_labels
    kind = fmt or ("auto" if path else accuracy.format)  # a set named by hand is looked at, not assumed
    if kind == "auto" and where:
        kind = detect_format(where, task)
    labeled = load_set(where, kind, task, labels, accuracy.default_label)
    samples, frames = read_frames(labeled, list_samples(labeled))
    if not samples:
        raise InputError(f"accuracy.spot_labels: none of the images in {where} is readable")
    info = {"path": str(where), "format": kind, "sha256": set_hash(samples)}
    return SpotSet(labeled, samples, frames, info)


def _run_record(run: EngineRun, evaluation: Evaluation) -> Dict[str, Any]:
    summary = evaluation.report()
    return {
        **run.identity.to_json(),
        "accuracy": summary.accuracy,
        "recall": summary.recalls(),
        "outcomes": {k: list(v) for k, v in evaluation.outcomes.items()},
    }


def _save(
    state_dir: str,
    spot: SpotSet,
    engine: Tuple[EngineRun, Evaluation],
    reference: Optional[Tuple[EngineRun, Evaluation]],
    reason: str,
) -> Dict[str, Any]:
    run, evaluation = engine
    record = {
        "reason": reason,
        "task": evaluation.task,
        "classes": evaluation.labels,
        "spot_set": {**spot.info, "samples": len(spot.samples)},
        "engine": _run_record(run, evaluation),
        "reference": _run_record(*reference) if reference else None,
    }
    stored = baselines.save(state_dir, record)
    return {
        "version": stored["version"],
        "path": str(baselines.path_of(state_dir, stored["version"])),
        "sha256": stored["sha256"],
        "reason": reason,
    }


def _reference_result(
    config: Config, run: EngineRun, evaluation: Evaluation, spot: SpotSet, reference: Optional[EngineRun]
) -> Tuple[EngineRun, Evaluation]:
    if reference is None and is_reference(run):
        return run, evaluation
    reference = reference or open_reference(config.model, config.backend)
    return reference, evaluate(config.model, reference, spot.samples, spot.frames)


def record_baseline(
    config: Config,
    run: EngineRun,
    reference: Optional[EngineRun] = None,
    reason: str = "promotion",
    labels_path: Optional[str] = None,
) -> Dict[str, Any]:
    """Store the engine's and the FP32 reference's results on the spot-labeled set as the new
    baseline (the promotion path and the daemon call this); returns what was saved. Takes the whole
    configuration: model, backend (the reference), accuracy (the set) and paths (the baselines)."""
    spot = load_spot_set(config.accuracy, config.model.task, run.labels, labels_path)
    evaluation = evaluate(config.model, run, spot.samples, spot.frames)
    reference_result = _reference_result(config, run, evaluation, spot, reference)
    return _save(config.paths.state_dir, spot, (run, evaluation), reference_result, reason)


def drift_against(
    accuracy: AccuracyConfig, baseline: Dict[str, Any], evaluation: Evaluation, run: EngineRun, spot_sha256: str
) -> Dict[str, Any]:
    """The drift section of a report: now against the baseline engine's outcomes (this sets the
    status), and, for information, against the FP32 reference's."""
    if baseline.get("classes") != evaluation.labels or baseline.get("task") != evaluation.task:
        raise baselines.BaselineError(
            f"baseline v{baseline.get('version')} was recorded for {baseline.get('task')} classes "
            f"{baseline.get('classes')}; "
            f"the model now has {evaluation.task} classes {evaluation.labels}; record a new one"
        )
    limits = drift.Thresholds.from_config(accuracy)
    current = evaluation.outcomes

    def outcomes_of(entry: Dict[str, Any]) -> Dict[str, Tuple[str, bool]]:
        return {k: (v[0], bool(v[1])) for k, v in entry["outcomes"].items()}

    result = drift.compare(outcomes_of(baseline["engine"]), current, evaluation.labels, limits)
    result["baseline"] = {
        "version": baseline["version"],
        "created": baseline["created"],
        "reason": baseline.get("reason"),
        "engine": {k: baseline["engine"].get(k) for k in ("id", "backend", "precision", "model_sha256")},
        "same_engine": baseline["engine"].get("id") == run.identity.id,
        "same_spot_set": baseline["spot_set"].get("sha256") == spot_sha256,
    }
    if baseline.get("reference"):
        vs = drift.compare(outcomes_of(baseline["reference"]), current, evaluation.labels, limits)
        result["vs_fp32_reference"] = {
            "status": vs["status"],
            "rules_fired": vs["rules_fired"],
            "per_class": {
                n: {"recall_delta": r["recall_delta"], "p_value": r["p_value"]} for n, r in vs["per_class"].items()
            },
        }
    return result


def run_check(
    config: Config,
    run: EngineRun,
    labels_path: Optional[str] = None,
    fmt: Optional[str] = None,
    save_baseline: bool = False,
    reference: Optional[EngineRun] = None,
) -> AccuracyReport:
    """The accuracy report (see docs/accuracy.md for its schema), with drift when a baseline exists.

    ``save_baseline`` stores this run (and the FP32 reference's) as the new baseline after the
    comparison with the previous one. Takes the whole configuration, as record_baseline does.
    """
    started = time.monotonic()
    spot = load_spot_set(config.accuracy, config.model.task, run.labels, labels_path, fmt)
    evaluation = evaluate(config.model, run, spot.samples, spot.frames)
    report = evaluation.report()
    report.samples, report.skipped = len(spot.samples), spot.labeled.skipped
    report.errors, report.spot_set = spot.labeled.errors[:MAX_ERRORS_LISTED], spot.info
    report.engine, report.ts = run.identity, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        baseline = baselines.latest(config.paths.state_dir)
        if baseline is not None:
            report.drift = drift_against(config.accuracy, baseline, evaluation, run, spot.info["sha256"])
    except baselines.BaselineError as exc:
        report.baseline_error = str(exc)
    if save_baseline:
        reference_result = _reference_result(config, run, evaluation, spot, reference)
        report.baseline_saved = _save(config.paths.state_dir, spot, (run, evaluation), reference_result, "manual")
    report.duration_s = round(time.monotonic() - started, 3)
    return report
