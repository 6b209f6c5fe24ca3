"""What calibration leaves behind for a model and a calibration set: the QDQ ONNX model (ONNX
Runtime, and TensorRT 8.5 to 11 explicit INT8), the ranges of every network tensor for TensorRT's
implicit INT8 (TensorRT < 11; tensor names are those of the normalized float model), the
calibration cache rendered from them for the installed TensorRT, and the calibration report
(per-tensor range, saturation, method).

A cache's header must name the TensorRT release that reads it, or TensorRT ignores the cache and
calibrates with a calibrator that has no data ("Calibration failure", NVIDIA/TensorRT#1378). So
the cache is written only where the release is known: at calibration time when TensorRT is
installed, else at build time from the ranges (``cache_from_ranges`` with ``tensorrt.__version__``).
The cache format has no comment lines (calibration.trt_cache), so where its scales come from is
said in the ranges file and the report, never in the cache.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from agent.util.errors import InputError
from agent.util.fileio import (
    atomic_move,
    atomic_write_json,
    atomic_write_text,
    canonical_json,
    sha256_bytes,
    sha256_file,
)
from calibration.calibrators import QuantizeSettings
from calibration.ranges import NetworkRanges, activation_ranges, network_amax, symmetric_amax, tensor_statistics
from calibration.trt_cache import cache_for

FORMAT_VERSION = 1
RANGES_FORMAT_VERSION = 1
RANGES_FILE = "tensorrt-ranges.json"
CACHE_FILE = "calibration.cache"
PROVENANCE = (
    "ONNX Runtime calibration, not TensorRT's calibrator: a tensor quantized in the QDQ model has its "
    "QuantizeLinear scale; a MaxPool, nearest Resize or reshape-like output its input's; every other "
    "tensor the largest |value| of the FP32 model on the calibration frames"
)


def settings_folder(settings: QuantizeSettings) -> str:
    """A folder name that differs whenever the settings do."""
    name = settings.method + (f"-p{settings.percentile:g}" if settings.method == "percentile" else "")
    name += "-perchannel" if settings.per_channel else "-pertensor"
    name += "-s8" if settings.symmetric_activations else "-u8"
    if settings.exclude:
        digest = sha256_bytes("\n".join(settings.exclude).encode())[:8]
        name += f"-float{len(settings.exclude)}-{digest}"
    return name


def installed_tensorrt() -> Optional[str]:
    """The installed TensorRT's version (``tensorrt.__version__``), None without TensorRT."""
    if importlib.util.find_spec("tensorrt") is None:
        return None
    import tensorrt

    return str(tensorrt.__version__)


def ranges_document(network: NetworkRanges, model_sha256: str) -> Dict[str, Any]:
    """The ranges file: every tensor's amax, their source, the model they name, a checksum."""
    return {
        "format_version": RANGES_FORMAT_VERSION,
        "provenance": PROVENANCE,
        "model_sha256": model_sha256,
        "amax": network.amax,
        "source": network.source,
        "sha256": sha256_bytes(canonical_json(network.amax).encode()),
    }


def read_ranges(path: str) -> Dict[str, float]:
    """The amax per tensor of a ranges file; InputError naming the file when it is not one or is damaged."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        amax = {str(k): float(v) for k, v in document["amax"].items()}
        version, digest = document["format_version"], document["sha256"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{path}: not a tensor ranges file ({exc})") from None
    if version != RANGES_FORMAT_VERSION:
        raise InputError(f"{path}: ranges format {version}, expected {RANGES_FORMAT_VERSION}")
    if sha256_bytes(canonical_json(document["amax"]).encode()) != digest:
        raise InputError(f"{path}: checksum mismatch (the ranges were changed or damaged)")
    return amax


def cache_from_ranges(ranges_path: str, version: str, algorithm: str = "EntropyCalibration2") -> str:
    """The TensorRT calibration cache text for the installed TensorRT ``version`` from a ranges file.

    For the build, which knows ``tensorrt.__version__``; ``algorithm`` names the calibrator that
    replays the cache (EntropyCalibration2 for an IInt8EntropyCalibrator2)."""
    return cache_for(version, read_ranges(ranges_path), algorithm)


def _write_cache(folder: Path, amax: Dict[str, float]) -> Tuple[Optional[str], Optional[str]]:
    """The cache for the installed TensorRT (path, header); none without TensorRT, and a cache left
    by an earlier calibration is removed, since its header may name another release."""
    target = folder / CACHE_FILE
    version = installed_tensorrt()
    if version is None:
        if target.exists():
            target.unlink()
        return None, None
    text = cache_for(version, amax)
    atomic_write_text(target, text)
    return str(target), text.splitlines()[0]


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
    """Place the QDQ model, the tensor ranges, the TensorRT cache (TensorRT installed only) and the
    report in ``folder``; return their paths.

    Saturation is measured on ``measured`` (e.g. held-out and spot-labeled frames, which show
    an unrepresentative calibration set for what it is), else on the calibration ``batches``."""
    import onnx

    folder.mkdir(parents=True, exist_ok=True)
    qdq_target = folder / "model.qdq.onnx"
    staged = folder / f".model.qdq.onnx.{time.time_ns()}.tmp"
    shutil.copyfile(qdq_model, staged)
    atomic_move(staged, qdq_target)
    ranges = activation_ranges(onnx.load(str(qdq_target)))
    network = network_amax(normalized_model, input_name, batches, symmetric_amax(ranges))
    atomic_write_json(folder / RANGES_FILE, ranges_document(network, sha256_file(normalized_model)))
    cache_path, header = _write_cache(folder, network.amax)
    every = {name: ranges.get(name, (-amax, amax)) for name, amax in network.amax.items()}
    stats = tensor_statistics(normalized_model, input_name, measured or batches, every)
    report = {
        "format_version": FORMAT_VERSION,
        "created": time.time(),
        **settings.describe(),
        **context,
        "weight_type": "int8 symmetric, " + ("per output channel" if settings.per_channel else "per tensor"),
        "calibration_frames": sum(len(b) for b in batches),
        "saturation_measured_on": measured_on if measured else "the calibration frames",
        "tensorrt_cache": {
            "provenance": PROVENANCE,
            "tensors": len(network.amax),
            "sources": dict(sorted(Counter(network.source.values()).items())),
            "header": header,
            "written": "at calibration (TensorRT installed)" if header else "at build time, for the installed TensorRT",
        },
        "tensors": stats,
        "most_saturated": most_saturated(stats),
    }
    atomic_write_json(folder / "calibration-report.json", report)
    paths = {
        "qdq_model": str(qdq_target),
        "trt_ranges": str(folder / RANGES_FILE),
        "calibration_report": str(folder / "calibration-report.json"),
    }
    if cache_path:
        paths["trt_calibration_cache"] = cache_path
    return paths


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
