"""Throttling seen in a measurement window: clocks that dropped under load, over-current alarms
and, on NVIDIA GPUs through NVML, the driver's own clock-event reasons (thermal, power cap, HW
slowdown: agent.telemetry.nvml.THROTTLE_BITS).

Pure: takes the snapshots the sampler recorded during the window. A clock counts as dropped
when its lowest sampled value is more than ``DROP_PCT`` below its highest one while the GPU was
busy (load >= ``BUSY_PCT``) in the lower sample, or, without a GPU load reading, in any sample.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from agent.telemetry.nvml import throttle_kinds

DROP_PCT = 10.0
BUSY_PCT = 50.0


def _drop(values: Sequence[Optional[float]]) -> Optional[Dict[str, float]]:
    known = [v for v in values if v is not None]
    if len(known) < 2 or max(known) <= 0:
        return None
    return {
        "min_mhz": min(known),
        "max_mhz": max(known),
        "drop_pct": round((max(known) - min(known)) / max(known) * 100.0, 1),
    }


def throttling(snapshots: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """{'throttled': bool | None, 'gpu': {...}, 'cpu': {...}, 'over_current_alarms': [...],
    'nvml_reasons': {gpu index: [names]}, 'reasons': [...]}."""
    busy = [s for s in snapshots if (s.get("gpu_load_pct") is None or s["gpu_load_pct"] >= BUSY_PCT)]
    gpu = _drop([(s.get("clocks") or {}).get("gpu_mhz") for s in busy])
    cpu_peaks = [
        max((c for c in (s.get("clocks") or {}).get("cpu_mhz") or [] if c is not None), default=None) for s in snapshots
    ]
    cpu = _drop(cpu_peaks)
    alarms: List[str] = sorted({a for s in snapshots for a in s.get("over_current_alarms") or []})
    reasons = [
        f"{name} clock dropped {d['drop_pct']}% under load"
        for name, d in (("GPU", gpu), ("CPU", cpu))
        if d and d["drop_pct"] > DROP_PCT
    ]
    reasons += [f"over-current alarm {a}" for a in alarms]
    nvml = nvml_reasons(snapshots)
    reasons += [
        f"GPU{index} {', '.join(throttle_kinds(names))} ({', '.join(names)})" for index, names in nvml["gpus"].items()
    ]
    known = gpu is not None or cpu is not None or bool(alarms) or nvml["read"]
    return {
        "throttled": bool(reasons) if known else None,
        "reasons": reasons,
        "gpu": gpu,
        "cpu": cpu,
        "over_current_alarms": alarms,
        "nvml_reasons": {str(k): v for k, v in nvml["gpus"].items()},
        "samples": len(snapshots),
    }


def nvml_reasons(snapshots: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """{'read': any NVML reasons read, 'gpus': {index: [throttling reason names seen, in order]}}."""
    seen: Dict[int, List[str]] = {}
    read = False
    for snapshot in snapshots:
        for gpu in snapshot.get("gpus") or []:
            decoded = gpu.get("clocks_event_reasons")
            if decoded is None:
                continue
            read = True
            names = seen.setdefault(gpu["index"], [])
            names += [n for n in decoded["throttling"] if n not in names]
    return {"read": read, "gpus": {k: v for k, v in seen.items() if v}}
