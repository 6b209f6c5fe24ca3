"""TensorRT's calibration cache text format, for implicit INT8 on TensorRT below 11.

The first line is ``TRT-<version>-<algorithm>``, e.g. ``TRT-8601-EntropyCalibration2`` (version
as TensorRT's integer NV_TENSORRT_VERSION: major*1000 + minor*100 + patch for 8.x, and
major*10000 + minor*100 + patch from 10.0). Each further line is ``<tensor name>: <scale>``, the
scale written as the 8 hex digits of its big-endian IEEE-754 float32; scale = amax / 127.
A TensorRT builder given a calibrator whose cache matches the header reads the scales and skips
calibration.
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
_LINE = re.compile(r"^(.+): ([0-9a-fA-F]{8})$")


@dataclass
class CalibrationCache:
    version: int
    algorithm: str
    scales: Dict[str, float]  # tensor name -> scale (amax / 127)

    def amax(self) -> Dict[str, float]:
        return {name: scale * QINT8_MAX for name, scale in self.scales.items()}


def tensorrt_version_number(version: str) -> int:
    """'8.6.1' -> 8601, '10.3.0' -> 100300 (TensorRT's NV_TENSORRT_VERSION encoding)."""
    parts = [int(p) for p in re.findall(r"\d+", version)[:3]] + [0, 0, 0]
    major, minor, patch = parts[:3]
    if major >= 10:
        return major * 10000 + minor * 100 + patch
    return major * 1000 + minor * 100 + patch


def scale_hex(scale: float) -> str:
    return struct.pack(">f", scale).hex()


def hex_scale(text: str) -> float:
    return float(struct.unpack(">f", bytes.fromhex(text))[0])


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
            raise InputError(f"{where}:{number}: expected '<tensor>: <8 hex digits>', got {line[:80]!r}")
        scales[match.group(1)] = hex_scale(match.group(2))
    return CalibrationCache(int(header.group(1)), header.group(2), scales)
