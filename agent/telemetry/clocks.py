"""GPU load and clocks (devfreq), CPU clocks (cpufreq), EMC clock, nvpmodel mode, pinned clocks.

Sources (device paths; see tests/fixtures/sysfs/README.md):
- GPU: /sys/class/devfreq/<node>/ with ``cur_freq``/``min_freq``/``max_freq`` in Hz and
  ``device/load`` in tenths of a percent; the node is the one whose ``device/of_node/name`` is a
  Jetson GPU (gpu, gp10b, gv11b, ga10b) or Thor's ``gpu-gpc-0``.
- CPU: /sys/devices/system/cpu/cpu*/cpufreq/scaling_{cur,min,max}_freq in kHz.
- EMC: debugfs clock rate in Hz (root only; absent otherwise).
- nvpmodel: /var/lib/nvpmodel/status ('pmode:0002 ...') mapped to a name by /etc/nvpmodel.conf.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from agent.telemetry.sysfs import SysfsRoot

GPU_OF_NAMES = ("gpu", "gp10b", "gv11b", "ga10b", "gb10b")
THOR_GPU_NODES = ("gpu-gpc-0",)
EMC_RATE_FILES = ("/sys/kernel/debug/bpmp/debug/clk/emc/rate", "/sys/kernel/debug/clk/emc/clk_rate")
_POWER_MODEL = re.compile(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=([^\s>]+)")
_PMODE = re.compile(r"pmode:(\d+)")


@dataclass(frozen=True)
class ClockPaths:
    """Discovered once; read at every sample."""

    gpu_devfreq: Optional[str]
    cpus: List[str]
    emc_rate: Optional[str]


def find_gpu_devfreq(fs: SysfsRoot) -> Optional[str]:
    for node in fs.glob("/sys/class/devfreq/*"):
        name = fs.text(f"{node}/device/of_node/name") or ""
        if name in GPU_OF_NAMES or node.rsplit("/", 1)[-1] in THOR_GPU_NODES:
            return node
    return None


def discover_clocks(fs: SysfsRoot) -> ClockPaths:
    cpus = [p.rsplit("/cpufreq", 1)[0] for p in fs.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq")]
    emc = next((p for p in EMC_RATE_FILES if fs.exists(p)), None)
    return ClockPaths(find_gpu_devfreq(fs), cpus, emc)


def _mhz(value: Optional[float], per_mhz: float) -> Optional[float]:
    return round(value / per_mhz, 1) if value is not None else None


def gpu_load_pct(fs: SysfsRoot, paths: ClockPaths) -> Optional[float]:
    """devfreq ``load`` is in tenths of a percent (0-1000)."""
    if not paths.gpu_devfreq:
        return None
    load = fs.number(f"{paths.gpu_devfreq}/device/load")
    return round(load / 10.0, 1) if load is not None else None


def read_limits(fs: SysfsRoot, paths: ClockPaths) -> Dict[str, Any]:
    """Clock floors and ceilings (MHz): they change only with nvpmodel or jetson_clocks, so the
    sampler re-reads them every few seconds rather than at every sample."""
    gpu = (
        {k: _mhz(fs.number(f"{paths.gpu_devfreq}/{k}_freq"), 1e6) for k in ("min", "max")} if paths.gpu_devfreq else {}
    )
    cpus = [{k: _mhz(fs.number(f"{cpu}/cpufreq/scaling_{k}_freq"), 1e3) for k in ("min", "max")} for cpu in paths.cpus]
    return {"gpu": gpu, "cpus": cpus}


def read_clocks(fs: SysfsRoot, paths: ClockPaths, limits: Dict[str, Any]) -> Dict[str, Any]:
    """Current clocks in MHz, with the limits that say whether they are pinned."""
    gpu, cpus = limits["gpu"], limits["cpus"]
    return {
        "gpu_mhz": _mhz(fs.number(f"{paths.gpu_devfreq}/cur_freq"), 1e6) if paths.gpu_devfreq else None,
        "gpu_min_mhz": gpu.get("min"),
        "gpu_max_mhz": gpu.get("max"),
        "cpu_mhz": [_mhz(fs.number(f"{cpu}/cpufreq/scaling_cur_freq"), 1e3) for cpu in paths.cpus],
        "cpu_max_mhz": [c["max"] for c in cpus],
        "emc_mhz": _mhz(fs.number(paths.emc_rate), 1e6) if paths.emc_rate else None,
        "pinned": clocks_pinned(gpu, cpus),
    }


def clocks_pinned(gpu: Dict[str, Optional[float]], cpus: List[Dict[str, Optional[float]]]) -> Optional[bool]:
    """True when every known clock's floor equals its ceiling (what jetson_clocks does), None if unknown."""
    pairs = [(gpu.get("min"), gpu.get("max"))] if gpu else []
    pairs += [(c["min"], c["max"]) for c in cpus]
    known = [(lo, hi) for lo, hi in pairs if lo is not None and hi is not None]
    if not known:
        return None
    return all(lo == hi for lo, hi in known)


def power_mode(fs: SysfsRoot) -> Optional[str]:
    """The nvpmodel mode as 'NAME (id N)', or 'id N' when the conf has no name for it, else None."""
    status = fs.text("/var/lib/nvpmodel/status") or ""
    match = _PMODE.search(status)
    if not match:
        return None
    mode_id = int(match.group(1))
    names = {int(i): n for i, n in _POWER_MODEL.findall(fs.text("/etc/nvpmodel.conf") or "")}
    return f"{names[mode_id]} (id {mode_id})" if mode_id in names else f"id {mode_id}"
