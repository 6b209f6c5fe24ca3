"""TensorRT's calibration cache text format, for implicit INT8 on TensorRT below 11.

The first line is ``TRT-<version>-<algorithm>``, e.g. ``TRT-8502-EntropyCalibration2``. The
version is TensorRT's NV_TENSORRT_VERSION: major*1000 + minor*100 + patch up to 9.x
(``kNV_TENSORRT_VERSION_IMPL`` in include/NvInferRuntimeCommon.h of NVIDIA/TensorRT release/8.5,
include/NvInferRuntimeBase.h of v8.6.1 and v9.3.0) and major*10000 + minor*100 + patch from 10.0
(``NV_TENSORRT_VERSION_INT`` in include/NvInferRuntimeBase.h of release/10.3, 10.13 and 11.1).
The real caches in tests/fixtures/trt_cache/ agree (8.5.2 -> 8502, 10.9.0 -> 100900).

Each further line is ``<tensor name>: <hex>``, the hex being the bits of the big-endian IEEE-754
float32 scale = amax / 127, written without leading zeros (a zero scale is ``0``: see the
fixtures, and ``float_to_hex`` in export/qdq_translator/utils.py of NVIDIA-AI-IOT/cuDLA-samples).
TensorRT skips a cache whose header does not name the installed release and the calibrator's
algorithm, and then calibrates with the calibrator (NVIDIA/TensorRT#1378); the format has no
comment lines, so provenance is kept outside the file (calibration.artefacts).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Dict, Mapping

from agent.util.errors import InputError

ALGORITHMS = ("EntropyCalibration2", "EntropyCalibration", "MinMaxCalibration", "LegacyCalibration")
QINT8_MAX = 127.0
_HEADER = re.compile(r"^TRT-(\d+)-(\w+)$")
_LINE = re.compile(r"^(.+): ([0-9a-fA-F]{1,8})$")


@dataclass
class CalibrationCache:
    version: int
    algorithm: str
    scales: Dict[str, float]  # tensor name -> scale (amax / 127)

    def amax(self) -> Dict[str, float]:
        return {name: scale * QINT8_MAX for name, scale in self.scales.items()}

    def release(self) -> str:
        return tensorrt_release(self.version)


def tensorrt_version_number(version: str) -> int:
    """'8.6.1' -> 8601, '10.3.0' -> 100300 (TensorRT's NV_TENSORRT_VERSION encoding)."""
    parts = [int(p) for p in re.findall(r"\d+", version)[:3]] + [0, 0, 0]
    major, minor, patch = parts[:3]
    if major >= 10:
        return major * 10000 + minor * 100 + patch
    return major * 1000 + minor * 100 + patch


def tensorrt_release(number: int) -> str:
    """8502 -> '8.5.2', 100300 -> '10.3.0' (the inverse of tensorrt_version_number)."""
    major, rest = divmod(number, 10000) if number >= 100000 else divmod(number, 1000)
    return f"{major}.{rest // 100}.{rest % 100}"


def scale_hex(scale: float) -> str:
    return struct.pack(">f", scale).hex()


def hex_scale(text: str) -> float:
    return float(struct.unpack(">f", bytes.fromhex(text.rjust(8, "0")))[0])


def format_cache(amax: Mapping[str, float], version: int, algorithm: str = "EntropyCalibration2") -> str:
    """The cache text for tensor ranges ``amax`` (absolute maxima, symmetric INT8)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"TensorRT calibration algorithm {algorithm!r}: expected one of {', '.join(ALGORITHMS)}")
    lines = [f"TRT-{version}-{algorithm}"]
    for name in sorted(amax):
        if "\n" in name or "\r" in name:
            raise ValueError(f"tensor name {name!r} cannot be written in a calibration cache (line break)")
        lines.append(f"{name}: {scale_hex(float(amax[name]) / QINT8_MAX)}")
    return "\n".join(lines) + "\n"


def cache_for(version: str, amax: Mapping[str, float], algorithm: str = "EntropyCalibration2") -> str:
    """The cache text for the installed TensorRT ``version`` (``tensorrt.__version__``, e.g. '10.3.0').

    ``algorithm`` must be the one of the calibrator that replays the cache (an
    IInt8EntropyCalibrator2 reads EntropyCalibration2), else TensorRT ignores the cache."""
    return format_cache(amax, tensorrt_version_number(version), algorithm)


def parse_cache(text: str, where: str = "calibration cache") -> CalibrationCache:
    """Parse cache text; InputError naming the line when it is not TensorRT's format."""
    lines = [line.rstrip("\r") for line in text.splitlines() if line.strip()]
    if not lines:
        raise InputError(f"{where}: empty")
    header = _HEADER.match(lines[0])
    if not header or header.group(2) not in ALGORITHMS:
        raise InputError(f"{where}:1: expected a header TRT-<version>-<{'|'.join(ALGORITHMS)}>, got {lines[0][:80]!r}")
    scales: Dict[str, float] = {}
    for number, line in enumerate(lines[1:], start=2):
        match = _LINE.match(line)
        if not match:
            raise InputError(f"{where}:{number}: expected '<tensor>: <1 to 8 hex digits>', got {line[:80]!r}")
        scales[match.group(1)] = hex_scale(match.group(2))
    return CalibrationCache(int(header.group(1)), header.group(2), scales)
