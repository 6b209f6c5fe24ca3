"""The context every benchmark and telemetry figure carries: which device, in which power mode,
at which clocks and temperatures, with which backend, precision, batch, model and engine."""

from __future__ import annotations

import os
import platform
import time
from typing import Any, Dict, Mapping, Optional

from agent.engines.identity import served_precision
from agent.util import device
from agent.util.fileio import sha256_file


def engine_sha256(path: Optional[str]) -> Optional[str]:
    if not path or not os.path.isfile(path):
        return None
    return sha256_file(path)


def thermal_clock_state(snapshot: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """Temperatures, clocks and GPU load from one telemetry snapshot."""
    if snapshot is None:
        return None
    return {
        "temperatures_c": snapshot.get("temperatures_c"),
        "clocks": snapshot.get("clocks"),
        "gpu_load_pct": snapshot.get("gpu_load_pct"),
        "over_current_alarms": snapshot.get("over_current_alarms"),
    }


def result_context(
    build_report: Mapping[str, Any],
    engine_info: Mapping[str, Any],
    batch: int,
    telemetry_description: Optional[Mapping[str, Any]] = None,
    start: Optional[Mapping[str, Any]] = None,
    end: Optional[Mapping[str, Any]] = None,
    root: str = "/",
) -> Dict[str, Any]:
    """The context block of a result (``build_report`` in its JSON form). ``start``/``end`` are
    telemetry snapshots taken just before and just after the measurement; ``root`` is where /proc
    and /etc are read (a copy in tests)."""
    described = telemetry_description or {}
    return {
        "device_model": device.device_model(root),
        "l4t": device.l4t_release(root),
        "hostname": platform.node(),
        "machine": platform.machine(),
        "cpu": device.cpu_identity(root)["model"],
        "python": platform.python_version(),
        "power_mode": described.get("power_mode"),
        "power_source": described.get("power_source"),
        "clocks_pinned": ((start or {}).get("clocks") or {}).get("pinned"),
        "at_start": thermal_clock_state(start),
        "at_end": thermal_clock_state(end),
        "backend": build_report.get("backend") or engine_info.get("backend"),
        "backend_version": build_report.get("backend_version") or engine_info.get("backend_version"),
        "precision": served_precision(build_report) or engine_info.get("precision"),
        "batch": batch,
        "model_sha256": build_report.get("model_sha256"),
        "built_model_sha256": build_report.get("built_model_sha256"),
        "engine_sha256": build_report.get("engine_sha256") or engine_sha256(build_report.get("engine_path")),
        "cache_key": build_report.get("cache_key"),
        "measured_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
