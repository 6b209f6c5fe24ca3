"""INT8 candidates calibrated by TensorRT itself (``backend.tensorrt.int8_calibration: tensorrt``).

Implicit quantization exists below TensorRT 11 only (11.x removed the calibrators and the INT8
builder flag: tests/tensorrt/api/trt-11.1.json); there the search stays with QDQ models and says so.
Each candidate gives the build child the calibration frames for TensorRT's calibrator of the
method's algorithm, and, as a fallback that names itself, a cache from the ONNX Runtime ranges of
the same method rendered for the installed release (``backend.version()``) and covering every
network tensor. TensorRT has no percentile calibrator, so a percentile candidate is built from
that cache directly. Nodes the search keeps in float become FP32 layer constraints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence

import numpy as np

from agent.backends.base import Backend, Int8Calibration
from calibration.calibrators import QuantizeSettings
from calibration.ranges import activation_ranges, network_amax, symmetric_amax
from calibration.trt_cache import cache_for

# Search method -> TensorRT calibrator algorithm (IInt8EntropyCalibrator2 / IInt8MinMaxCalibrator).
ALGORITHMS = {"entropy": "EntropyCalibration2", "minmax": "MinMaxCalibration"}
FRAMES_FILE = "calibration-frames.npy"
CACHE_FILE = "tensorrt-calibrator.cache"


def tensorrt_calibrates(backend: Backend, options: Mapping[str, Any]) -> bool:
    """Whether INT8 candidates are calibrated by TensorRT (asked for, and the release has calibrators)."""
    asked = backend.name == "tensorrt" and options.get("int8_calibration", "qdq") == "tensorrt"
    return asked and int(backend.version().split(".")[0]) < 11


def route_notes(backend: Backend, options: Mapping[str, Any]) -> List[str]:
    """What the search says about where INT8 scales come from when that is not the default."""
    if tensorrt_calibrates(backend, options):
        return [f"INT8 scales from TensorRT {backend.version()}'s own calibrator (int8_calibration: tensorrt)"]
    if backend.name == "tensorrt" and options.get("int8_calibration") == "tensorrt":
        return [
            f"int8_calibration tensorrt: TensorRT {backend.version()} has no implicit INT8 calibration, so the "
            "candidates are QDQ models calibrated with ONNX Runtime"
        ]
    return []


def write_frames(path: Path, batches: Sequence[np.ndarray]) -> Optional[str]:
    """The batches of the first batch's shape as one (batches, batch, ...) float32 array file, written
    batch by batch (no second copy in memory); None when there are none."""
    usable = [b for b in batches if batches and b.shape == batches[0].shape]
    if not usable:
        return None
    stacked = np.lib.format.open_memmap(
        str(path), mode="w+", dtype=np.float32, shape=(len(usable),) + tuple(usable[0].shape)
    )
    for index, batch in enumerate(usable):
        stacked[index] = batch
    stacked.flush()
    del stacked
    return str(path)


def implicit_calibration(
    backend: Backend,
    normalized_model: str,
    input_name: str,
    settings: QuantizeSettings,
    qdq_model: str,
    batches: Sequence[np.ndarray],
    folder: Path,
) -> Int8Calibration:
    """The calibration a candidate's implicit INT8 build gets (see the module docstring)."""
    import onnx

    ranges = symmetric_amax(activation_ranges(onnx.load(qdq_model, load_external_data=False)))
    amax = network_amax(normalized_model, input_name, batches, ranges).amax
    algorithm = ALGORITHMS.get(settings.method)
    return Int8Calibration(
        algorithm=algorithm or "EntropyCalibration2",
        frames_path=write_frames(folder / FRAMES_FILE, batches) if algorithm else None,
        cache_path=str(folder / CACHE_FILE),
        fallback_cache=cache_for(backend.version(), amax, algorithm or "EntropyCalibration2"),
        fallback_source=f"ONNX Runtime {settings.method} ranges rendered for TensorRT {backend.version()}",
        keep_float=tuple(settings.exclude),
    )
