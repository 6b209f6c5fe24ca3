"""Throttling seen in a measurement window: clocks that dropped under load, over-current alarms.

Pure: takes the snapshots the sampler recorded during the window. A clock counts as dropped
when its lowest sampled value is more than ``DROP_PCT`` below its highest one while the GPU was
busy (load >= ``BUSY_PCT``) in the lower sample, or, without a GPU load reading, in any sample.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

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
    """{'throttled': bool | None, 'gpu': {...}, 'cpu': {...}, 'over_current_alarms': [...], 'reasons': [...]}."""
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
    known = gpu is not None or cpu is not None or bool(alarms)
    return {
        "throttled": bool(reasons) if known else None,
        "reasons": reasons,
        "gpu": gpu,
        "cpu": cpu,
        "over_current_alarms": alarms,
        "samples": len(snapshots),
    }
