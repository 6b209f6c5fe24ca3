"""What calibration leaves behind for a model and a calibration set: the QDQ ONNX model (ONNX
Runtime, and TensorRT 8.5 to 11 explicit INT8), the TensorRT calibration cache (implicit INT8 on
TensorRT < 11; its tensor names are those of the normalized float model), and the calibration
report (per-tensor range, saturation, method)."""

from __future__ import annotations

import importlib.util
import shutil
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from agent.util.fileio import atomic_move, atomic_write_json, atomic_write_text, sha256_bytes
from calibration.calibrators import QuantizeSettings
from calibration.ranges import activation_ranges, symmetric_amax, tensor_statistics
from calibration.trt_cache import format_cache, tensorrt_version_number

FORMAT_VERSION = 1
DEFAULT_TRT_VERSION = "8.6.1"  # JetPack 6.0; used when TensorRT is not installed on this machine


def settings_folder(settings: QuantizeSettings) -> str:
    """A folder name that differs whenever the settings do."""
    name = settings.method + (f"-p{settings.percentile:g}" if settings.method == "percentile" else "")
    name += "-perchannel" if settings.per_channel else "-pertensor"
    name += "-s8" if settings.symmetric_activations else "-u8"
    if settings.exclude:
        digest = sha256_bytes("\n".join(settings.exclude).encode())[:8]
        name += f"-float{len(settings.exclude)}-{digest}"
    return name


def tensorrt_version() -> Dict[str, Any]:
    """The TensorRT release the cache header names: the installed one, else the default, said so."""
    if importlib.util.find_spec("tensorrt") is not None:
        import tensorrt

        return {"version": str(tensorrt.__version__), "installed": True}
    return {"version": DEFAULT_TRT_VERSION, "installed": False}


def write_artefacts(
    folder: Path,
    normalized_model: str,
    qdq_model: str,
    settings: QuantizeSettings,
    input_name: str,
    batches: Sequence[np.ndarray],
    context: Dict[str, Any],
    measured: Sequence[np.ndarray] = (),
    measured_on: str = "",
) -> Dict[str, str]:
    """Place the QDQ model, the TensorRT cache and the report in ``folder``; return their paths.

    Saturation is measured on ``measured`` (e.g. held-out and spot-labeled frames, which show
    an unrepresentative calibration set for what it is), else on the calibration ``batches``."""
    import onnx

    folder.mkdir(parents=True, exist_ok=True)
    qdq_target = folder / "model.qdq.onnx"
    staged = folder / f".model.qdq.onnx.{time.time_ns()}.tmp"
    shutil.copyfile(qdq_model, staged)
    atomic_move(staged, qdq_target)
    ranges = activation_ranges(onnx.load(str(qdq_target)))
    amax = symmetric_amax(ranges)
    trt = tensorrt_version()
    cache_text = format_cache(amax, tensorrt_version_number(trt["version"]))
    atomic_write_text(folder / "calibration.cache", cache_text)
    stats = tensor_statistics(normalized_model, input_name, measured or batches, ranges)
    report = {
        "format_version": FORMAT_VERSION,
        "created": time.time(),
        **settings.describe(),
        **context,
        "weight_type": "int8 symmetric, " + ("per output channel" if settings.per_channel else "per tensor"),
        "calibration_frames": sum(len(b) for b in batches),
        "saturation_measured_on": measured_on if measured else "the calibration frames",
        "tensorrt_cache": {
            "header": cache_text.splitlines()[0],
            "tensorrt_installed": trt["installed"],
            "tensors": len(amax),
        },
        "tensors": stats,
        "most_saturated": most_saturated(stats),
    }
    atomic_write_json(folder / "calibration-report.json", report)
    return {
        "qdq_model": str(qdq_target),
        "trt_calibration_cache": str(folder / "calibration.cache"),
        "calibration_report": str(folder / "calibration-report.json"),
    }


def most_saturated(stats: Dict[str, Dict[str, Any]], count: int = 5) -> List[Dict[str, Any]]:
    ranked = sorted(stats.items(), key=lambda kv: -kv[1]["saturation"])[:count]
    return [{"tensor": name, "saturation": entry["saturation"]} for name, entry in ranked if entry["saturation"] > 0]


def batch_size_for(frames: int, fixed: Optional[int], largest: int = 4) -> int:
    """Calibration batch size: the model's fixed batch, else the largest divisor of the frame
    count up to ``largest``. Equal batches: ORT's histogram calibrators stack them. Small: the
    quantizer may hold every batch's activations (a few 640x640 detector frames are ~1 GB)."""
    if fixed:
        return fixed
    return max(d for d in range(1, min(largest, max(frames, 1)) + 1) if frames % d == 0)
