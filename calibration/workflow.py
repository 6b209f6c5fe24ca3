"""``edge-agent calibrate``: collect frames, compute ranges, write the artefacts; and the helpers
the gated build (calibration.promote) shares with it."""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from agent.backends.registry import resolve_name
from agent.config.sections import CalibrationConfig, Config
from agent.model.pipeline import PreparedModel, prepare_model
from agent.model.preprocess import make_batch
from agent.util.progress import Listener, Progress
from calibration.artefacts import batch_size_for, settings_folder, write_artefacts
from calibration.calibrators import (
    QuantizeSettings,
    fit_to_memory,
    needs_memory_cap,
    quantize_qdq,
    symmetric_for,
)
from calibration.collect import collect
from calibration.datasets import CalibrationSet
from calibration.normalize import normalize_file
from calibration.ranges import activation_bytes

log = logging.getLogger(__name__)


def base_settings(c: CalibrationConfig, backend_name: str, method: Optional[str] = None) -> QuantizeSettings:
    return QuantizeSettings(
        method or c.method, bool(c.per_channel), float(c.percentile), symmetric_activations=symmetric_for(backend_name)
    )


def calibration_batches(images: Sequence[np.ndarray], model: PreparedModel) -> List[np.ndarray]:
    """Frames -> equal batches through agent.model.preprocess (the inference path). A model with a fixed
    batch drops the frames that do not fill its last batch (zero padding would skew the ranges)."""
    fixed = model.info.inputs[[t.name for t in model.info.inputs].index(model.spec.name)].shape[0]
    size = batch_size_for(len(images), fixed)
    spec = dataclasses.replace(model.spec, batch=size)
    usable = len(images) - len(images) % size
    return [make_batch(list(images[i : i + size]), spec)[0] for i in range(0, usable, size)]


def histogram_batches(
    c: CalibrationConfig, normalized: str, model: PreparedModel, batches: List[np.ndarray]
) -> List[np.ndarray]:
    """The batches memory-capped calibrators get (needs_memory_cap): as many as calibration.max_memory_mb holds."""
    if not batches:
        return batches
    per_batch = activation_bytes(normalized, model.spec.name, batches[0])
    return fit_to_memory(batches, per_batch, int(c.max_memory_mb) * 1024 * 1024)


def frames_note(used: List[np.ndarray], batches: List[np.ndarray]) -> List[str]:
    if len(used) == len(batches):
        return []
    return [
        "memory-capped calibrators (entropy, percentile; minmax too on an onnxruntime without strided calibration, "
        f"e.g. 1.16) calibrated on {sum(len(b) for b in used)} of {sum(len(b) for b in batches)} frames "
        "(their activations must fit in calibration.max_memory_mb)"
    ]


def shortfall_note(manifest: Dict[str, Any]) -> List[str]:
    """A note when the source ended before the requested number of frames was kept."""
    asked, kept = manifest["settings"].get("frames_requested"), len(manifest["frames"])
    if not asked or kept >= asked:
        return []
    skipped = manifest["skipped"]
    return [
        f"asked for {asked} calibration frames, got {kept}: the source ended after {manifest['seen']} frame(s) "
        f"({skipped['too_close']} too close in time and {skipped['near_duplicates']} near-duplicate(s) skipped)"
    ]


def models_folder(cal_set: CalibrationSet, model: PreparedModel) -> Path:
    return cal_set.folder / "models" / model.sha256[:16]


def normalized_model(cal_set: CalibrationSet, model: PreparedModel) -> Tuple[str, Dict[str, Any]]:
    """The model normalized for quantization, kept next to the calibration set."""
    target = models_folder(cal_set, model) / "normalized.onnx"
    report = normalize_file(model.path, str(target))
    return str(target), report.as_dict()


def calibrate(
    config: Config,
    source: Optional[str] = None,
    frames: Optional[int] = None,
    method: Optional[str] = None,
    listener: Optional[Listener] = None,
) -> Dict[str, Any]:
    """Collect a calibration set (it becomes current) and calibrate the configured model on it;
    ``listener`` hears each collected frame (the daemon's calibrate command reports progress).
    Takes the whole configuration: calibration, source, paths, model and backend."""
    c = config.calibration
    model = prepare_model(config.model)  # a model that cannot be served is refused before any frame is collected
    with Progress("calibration frames", frames or c.frames, listener=listener) as progress:
        cal_set = collect(c, config.source, config.paths.calibration_dir, source, frames, progress)
    settings = base_settings(c, resolve_name(config.backend.name), method)
    normalized, normalization = normalized_model(cal_set, model)
    all_batches = calibration_batches(cal_set.images(), model)
    batches = histogram_batches(c, normalized, model, all_batches) if needs_memory_cap(settings.method) else all_batches
    folder = models_folder(cal_set, model) / settings_folder(settings)
    with tempfile.TemporaryDirectory(prefix=".quantize-", dir=str(cal_set.folder)) as work:
        qdq = str(Path(work) / "model.qdq.onnx")
        quantize_qdq(normalized, qdq, model.spec.name, batches, settings)
        context = {
            "calibration_hash": cal_set.calibration_hash,
            "source_model_sha256": model.sha256,
            "normalization": normalization,
        }
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
        "notes": shortfall_note(manifest) + frames_note(batches, all_batches),
        **paths,
    }
