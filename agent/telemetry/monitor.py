"""Telemetry sources discovered once, read together into one snapshot dict.

Power comes from the first source that has it: Jetson sysfs rails (INA3221 / INA238), else
tegrastats (when enabled and installed), else NVML and RAPL on x86. Snapshot fields (the same
names as a parsed tegrastats line): ``rails`` {name: mW}, ``total_mw``, ``total_rail``,
``total_kind`` (input | sum), ``total_note``, ``power_source``, ``temperatures_c`` {zone: C or
None}, ``gpu_load_pct``, ``clocks``, ``over_current_alarms``, with NVML ``gpus`` (one record per
GPU, agent.telemetry.nvml), with NVML or RAPL ``energy_counters_mj`` {rail: cumulative mJ} and,
on the live system only, ``system`` (psutil CPU and memory). Power and GPU load are read at every call; temperatures,
clocks and alarms at most every SLOW_REFRESH_S, which keeps a 10-20 Hz sampler cheap.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from typing import Any, Dict, List, Optional

from agent.config.sections import TelemetryConfig
from agent.telemetry import clocks, power, thermal
from agent.telemetry.hostpower import RaplReader
from agent.telemetry.nvml import NvmlReader
from agent.telemetry.sysfs import SysfsRoot
from agent.telemetry.tegrastats import TegrastatsProcess

log = logging.getLogger(__name__)
LIMITS_REFRESH_S = 5.0
SLOW_REFRESH_S = 0.5
HOST_NOTE = "x86: RAPL covers the CPU package, NVML the GPU board; the rest of the machine is not measured"


class Telemetry:
    """Readers for one machine (or a sysfs tree copied from one)."""

    def __init__(
        self,
        root: str = "/",
        tegrastats: str = "auto",
        nvml: str = "auto",
        rapl: str = "auto",
        tegrastats_interval_ms: int = 1000,
    ) -> None:
        self.fs = SysfsRoot(root)
        self.live = os.path.abspath(root) == "/"
        self.rails = power.discover_rails(self.fs)
        self.zones = thermal.discover_zones(self.fs)
        self.clock_paths = clocks.discover_clocks(self.fs)
        self.notes: List[str] = []
        self._limits: Dict[str, Any] = {}
        self._limits_t = float("-inf")
        self._slow: Dict[str, Any] = {}
        self._slow_t = float("-inf")
        self._tegrastats: Optional[TegrastatsProcess] = None
        self._tegrastats_last: Optional[Dict[str, Any]] = None
        self._lock = threading.Lock()
        self._stale_s = max(1.0, 3 * tegrastats_interval_ms / 1000.0)  # three missed lines
        if not self.rails and self._wanted(tegrastats, "tegrastats"):
            self._tegrastats = TegrastatsProcess(self._on_tegrastats, tegrastats_interval_ms)
        self.rapl = RaplReader(self.fs) if rapl != "off" else None
        if self.rapl is not None and not self.rapl.domains:
            self._missing(rapl, "rapl", "no RAPL powercap domains under /sys/class/powercap")
            self.rapl = None
        self.nvml: Optional[NvmlReader] = None
        if nvml != "off" and not self.rails:
            try:
                self.nvml = NvmlReader()
            except Exception as exc:  # ImportError, NVMLError, RuntimeError
                self._missing(
                    nvml,
                    "nvml",
                    f"NVML not usable ({type(exc).__name__}: {exc}); pip install nvidia-ml-py on x86 NVIDIA machines",
                )

    def _wanted(self, mode: str, tool: str) -> bool:
        if mode == "off":
            return False
        found = self.live and shutil.which(tool) is not None
        if not found:
            self._missing(
                mode, tool, f"{tool} not found on PATH" if self.live else f"{tool} only runs on the live system"
            )
        return found

    def _missing(self, mode: str, name: str, why: str) -> None:
        self.notes.append(f"{name}: {why}")
        (log.warning if mode == "on" else log.debug)("telemetry %s: %s", name, why)

    def _on_tegrastats(self, stamp: float, parsed: Dict[str, Any]) -> None:
        with self._lock:
            self._tegrastats_last = dict(parsed, t=stamp)

    @property
    def power_source(self) -> Optional[str]:
        if self.rails:
            return "sysfs"
        if self._tegrastats is not None:
            return "tegrastats"
        if self.nvml is not None or self.rapl is not None:
            return "+".join(n for n, r in (("nvml", self.nvml), ("rapl", self.rapl)) if r is not None)
        return None

    def power_unavailable_reason(self) -> Optional[str]:
        if self.power_source is not None:
            return None
        tried = "; ".join(self.notes) or "nothing to try"
        rails = os.path.join(self.fs.root, "sys")
        return f"no power source: no INA3221/INA238 rails under {rails} and no other source ({tried})"

    def start(self) -> None:
        if self._tegrastats is not None:
            self._tegrastats.start()

    def stop(self) -> None:
        if self._tegrastats is not None:
            self._tegrastats.stop()

    def _power(self) -> Dict[str, Any]:
        now = time.monotonic()
        if self.rails:
            rails = {r.name: _round(r.read_mw(self.fs)) for r in self.rails}
            total = power.total_power(rails)
            return {"t": now, "rails": rails, "total": total}
        if self._tegrastats is not None:
            with self._lock:
                last = self._tegrastats_last
            if last is None or now - last["t"] > self._stale_s:
                why = "no tegrastats line yet" if last is None else f"no tegrastats line for {now - last['t']:.1f} s"
                return {"t": now, "rails": {}, "total": power.Total(None, None, None, why)}
            total = power.Total(last["total_mw"], last["total_rail"], last["total_kind"], last["total_note"])
            return {"t": last["t"], "rails": last["rails"], "total": total}
        rails = {}
        counters: Dict[str, float] = {}
        gpus = self.nvml.read_gpus() if self.nvml is not None else []
        for gpu in gpus:
            name = f"GPU{gpu['index']}"
            rails[name] = _round(gpu["power_mw"])
            if gpu["energy_mj"] is not None:
                counters[name] = gpu["energy_mj"]
        if self.rapl is not None:
            rails.update({k: _round(v) for k, v in self.rapl.read_mw().items()})
            counters.update(self.rapl.energy_mj)
        readable = [v for v in rails.values() if v is not None]
        label = "sum(" + "+".join(sorted(rails)) + ")" if rails else None
        total = power.Total(
            sum(readable) if readable else None, label, "sum" if rails else None, HOST_NOTE if rails else None
        )
        return {"t": now, "rails": rails, "total": total, "gpus": gpus, "energy_counters_mj": counters}

    def _slow_state(self) -> Dict[str, Any]:
        """Temperatures, clocks and alarms: re-read at most every SLOW_REFRESH_S (they change
        slowly; power and GPU load are read at every sample)."""
        now = time.monotonic()
        if now - self._slow_t >= SLOW_REFRESH_S:
            self._slow = {
                "temperatures_c": thermal.read_zones(self.fs, self.zones),
                "clocks": clocks.read_clocks(self.fs, self.clock_paths, self._clock_limits()),
                "over_current_alarms": [f"{r.name}:{a}" for r in self.rails for a in r.alarms(self.fs)],
            }
            self._slow_t = now
        return self._slow

    def read(self) -> Dict[str, Any]:
        """One snapshot of every source."""
        measured = self._power()
        total: power.Total = measured["total"]
        snapshot: Dict[str, Any] = {
            "t": measured["t"],
            "rails": measured["rails"],
            "total_mw": _round(total.mw),
            "total_rail": total.rail,
            "total_kind": total.kind,
            "total_note": total.note,
            "power_source": self.power_source,
            "gpu_load_pct": clocks.gpu_load_pct(self.fs, self.clock_paths),
        }
        snapshot.update(self._slow_state())
        if measured.get("gpus"):
            _add_gpus(snapshot, measured["gpus"])
        if measured.get("energy_counters_mj"):
            snapshot["energy_counters_mj"] = measured["energy_counters_mj"]
        if self.live:
            snapshot["system"] = _system()
        return snapshot

    def _clock_limits(self) -> Dict[str, Any]:
        now = time.monotonic()
        if now - self._limits_t >= LIMITS_REFRESH_S:
            self._limits, self._limits_t = clocks.read_limits(self.fs, self.clock_paths), now
        return self._limits

    def read_first(self, timeout_s: float = 3.0) -> Dict[str, Any]:
        """A snapshot with power in it where a source needs time for its first reading (a
        tegrastats line, a second RAPL counter read); gives up after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        snapshot = self.read()
        while snapshot["total_mw"] is None and self.power_source not in (None, "sysfs") and time.monotonic() < deadline:
            time.sleep(0.1)
            snapshot = self.read()
        return snapshot

    def describe(self) -> Dict[str, Any]:
        """What was discovered: for logs, context and `edge-agent telemetry` headers."""
        return {
            "root": self.fs.root,
            "rails": [r.name for r in self.rails],
            "thermal_zones": [z for z, _ in self.zones],
            "gpu_devfreq": self.clock_paths.gpu_devfreq,
            "power_source": self.power_source,
            "power_mode": clocks.power_mode(self.fs),
            "notes": list(self.notes),
        }


def _add_gpus(snapshot: Dict[str, Any], gpus: List[Dict[str, Any]]) -> None:
    """NVML's per-GPU records under ``gpus``; the flat fields (gpu_load_pct, clocks.gpu_mhz,
    clocks.gpu_max_mhz, temperatures_c.GPUn) filled from them, GPU0 for the flat ones."""
    first = gpus[0]
    snapshot["gpus"] = gpus
    snapshot["gpu_load_pct"] = first["gpu_load_pct"]
    temps = dict(snapshot.get("temperatures_c") or {})
    temps.update({f"GPU{g['index']}": g["temperature_c"] for g in gpus})
    snapshot["temperatures_c"] = temps
    snapshot["clocks"] = dict(
        snapshot.get("clocks") or {},
        gpu_mhz=first["sm_mhz"],
        gpu_max_mhz=first["sm_max_mhz"],
        gpu_mem_mhz=first["mem_mhz"],
        gpu_mem_max_mhz=first["mem_max_mhz"],
    )


def _round(value: Optional[float]) -> Optional[float]:
    return round(value, 1) if value is not None else None


def _system() -> Optional[Dict[str, Any]]:
    try:
        import psutil
    except ImportError:
        return None
    memory = psutil.virtual_memory()
    return {
        "cpu_pct": psutil.cpu_percent(interval=None),
        "mem_used_mb": round((memory.total - memory.available) / 2**20, 1),
        "mem_total_mb": round(memory.total / 2**20, 1),
    }


def telemetry_from_config(t: TelemetryConfig) -> Telemetry:
    """The Telemetry the ``telemetry`` config section describes."""
    interval_ms = max(50, int(1000.0 / t.rate_hz))
    return Telemetry(t.sysfs_root, t.tegrastats, t.nvml, t.rapl, interval_ms)
