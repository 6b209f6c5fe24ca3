"""NVIDIA GPUs through NVML (package nvidia-ml-py, module ``pynvml``): one record per GPU.

Names, units and constants are nvidia-ml-py's pynvml.py (13.615.71) and NVIDIA's NVML API
reference (docs.nvidia.com/deploy/nvml-api, "Device Queries"):

- nvmlDeviceGetPowerUsage: mW; nvmlDeviceGetEnforcedPowerLimit: mW;
- nvmlDeviceGetTotalEnergyConsumption: mJ since the driver was last reloaded (Volta and newer);
- nvmlDeviceGetUtilizationRates: ``.gpu`` and ``.memory`` in percent over the last sample period;
- nvmlDeviceGetMemoryInfo: ``.used`` / ``.total`` in bytes; with ``version=nvmlMemory_v2``
  (0x02000028) ``.used`` leaves out the driver's ``.reserved`` memory, which is what nvidia-smi
  prints (the v1 struct counts it as used: 615 MiB more on an idle H200, docs/telemetry.md);
- nvmlDeviceGetClockInfo / nvmlDeviceGetMaxClockInfo with NVML_CLOCK_SM (1) / NVML_CLOCK_MEM (2): MHz;
- nvmlDeviceGetTemperature with NVML_TEMPERATURE_GPU (0): degrees C;
- nvmlDeviceGetCurrentClocksEventReasons (the newer name of ...ClocksThrottleReasons, same mask).

A query the GPU does not support raises NVMLError (NVML_ERROR_NOT_SUPPORTED = 3, e.g. the energy
counter before Volta): that field alone is None and named in the record's ``unsupported``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

# The clocks-event reason bits (pynvml.py: nvmlClocksEventReason* == nvmlClocksThrottleReason*).
# Only these slow the clocks against the application's wish; GpuIdle (0x1),
# ApplicationsClocksSetting (0x2), SyncBoost (0x10) and DisplayClockSetting (0x100) are named
# but do not count as throttling.
THROTTLE_BITS: Tuple[Tuple[int, str, str], ...] = (
    (0x0000000000000004, "sw_power_cap", "power cap"),
    (0x0000000000000008, "hw_slowdown", "HW slowdown"),
    (0x0000000000000020, "sw_thermal_slowdown", "thermal"),
    (0x0000000000000040, "hw_thermal_slowdown", "thermal"),
    (0x0000000000000080, "hw_power_brake_slowdown", "power cap"),
    (0x0000000000000200, "board_limit", "board limit"),
    (0x0000000000000400, "reliability", "reliability"),
)
OTHER_BITS: Tuple[Tuple[int, str], ...] = (
    (0x0000000000000001, "gpu_idle"),
    (0x0000000000000002, "applications_clocks_setting"),
    (0x0000000000000010, "sync_boost"),
    (0x0000000000000100, "display_clock_setting"),
)
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_TEMPERATURE_GPU = 0
MB = 2**20


def decode_reasons(mask: int) -> Dict[str, Any]:
    """A clocks-event mask -> {'mask': '0x...', 'active': [names], 'throttling': [names]}."""
    throttling = [name for bit, name, _ in THROTTLE_BITS if mask & bit]
    active = [name for bit, name in OTHER_BITS if mask & bit] + throttling
    return {"mask": f"0x{mask:016x}", "active": active, "throttling": throttling}


def throttle_kinds(throttling: List[str]) -> List[str]:
    """The reasons' kinds (thermal, power cap, HW slowdown, ...), each once, in table order."""
    kinds = [kind for _, name, kind in THROTTLE_BITS if name in throttling]
    return list(dict.fromkeys(kinds))


class NvmlReader:
    """Every GPU NVML sees; raises ImportError (no nvidia-ml-py) or RuntimeError / NVMLError."""

    def __init__(self, module: Any = None) -> None:
        if module is None:
            import pynvml  # from nvidia-ml-py

            module = pynvml
        self.nvml: Any = module
        module.nvmlInit()
        self.handles = [module.nvmlDeviceGetHandleByIndex(i) for i in range(module.nvmlDeviceGetCount())]
        if not self.handles:
            raise RuntimeError("NVML found no GPU")
        self.names = [_text(self._get(module.nvmlDeviceGetName, h, [])) for h in self.handles]
        self.driver = _text(self._get(module.nvmlSystemGetDriverVersion, None, []))
        reasons = getattr(module, "nvmlDeviceGetCurrentClocksEventReasons", None)
        self._reasons: Callable[[Any], int] = reasons or module.nvmlDeviceGetCurrentClocksThrottleReasons

    def _get(self, fn: Callable[..., Any], handle: Any, unsupported: List[str], *args: Any, field: str = "") -> Any:
        try:
            return fn(*args) if handle is None else fn(handle, *args)
        except self.nvml.NVMLError:
            unsupported.append(field or getattr(fn, "__name__", "?"))
            return None

    def read_gpus(self) -> List[Dict[str, Any]]:
        """Load, memory, clocks, temperature, power limit and clock-event reasons of each GPU."""
        return [self._gpu(index, handle) for index, handle in enumerate(self.handles)]

    def _gpu(self, index: int, handle: Any) -> Dict[str, Any]:
        nv = self.nvml
        missing: List[str] = []
        util = self._get(nv.nvmlDeviceGetUtilizationRates, handle, missing, field="utilization")
        memory = self._memory(handle, missing)
        limit = self._get(nv.nvmlDeviceGetEnforcedPowerLimit, handle, missing, field="power_limit")
        mask = self._get(self._reasons, handle, missing, field="clocks_event_reasons")
        record = {
            "index": index,
            "name": self.names[index],
            "gpu_load_pct": _num(util.gpu) if util is not None else None,
            "memory_load_pct": _num(util.memory) if util is not None else None,
            "memory_used_mb": round(memory.used / MB, 1) if memory is not None else None,
            "memory_total_mb": round(memory.total / MB, 1) if memory is not None else None,
            "memory_reserved_mb": round(memory.reserved / MB, 1) if hasattr(memory, "reserved") else None,
            "sm_mhz": _num(self._get(nv.nvmlDeviceGetClockInfo, handle, missing, NVML_CLOCK_SM, field="sm_mhz")),
            "mem_mhz": _num(self._get(nv.nvmlDeviceGetClockInfo, handle, missing, NVML_CLOCK_MEM, field="mem_mhz")),
            "sm_max_mhz": _num(
                self._get(nv.nvmlDeviceGetMaxClockInfo, handle, missing, NVML_CLOCK_SM, field="sm_max_mhz")
            ),
            "mem_max_mhz": _num(
                self._get(nv.nvmlDeviceGetMaxClockInfo, handle, missing, NVML_CLOCK_MEM, field="mem_max_mhz")
            ),
            "temperature_c": _num(
                self._get(nv.nvmlDeviceGetTemperature, handle, missing, NVML_TEMPERATURE_GPU, field="temperature_c")
            ),
            "power_mw": _num(self._get(nv.nvmlDeviceGetPowerUsage, handle, missing, field="power_mw")),
            "power_limit_mw": _num(limit),
            "energy_mj": _num(self._get(nv.nvmlDeviceGetTotalEnergyConsumption, handle, missing, field="energy_mj")),
            "clocks_event_reasons": decode_reasons(int(mask)) if mask is not None else None,
        }
        record["unsupported"] = missing
        return record

    def _memory(self, handle: Any, missing: List[str]) -> Any:
        version = getattr(self.nvml, "nvmlMemory_v2", None)
        if version is not None:
            memory = self._get(self.nvml.nvmlDeviceGetMemoryInfo, handle, [], version)
            if memory is not None:
                return memory
        return self._get(self.nvml.nvmlDeviceGetMemoryInfo, handle, missing, field="memory")


def _num(value: Any) -> Optional[float]:
    return float(value) if value is not None else None


def _text(value: Any) -> Optional[str]:
    if isinstance(value, bytes):  # older nvidia-ml-py returned bytes
        return value.decode("utf-8", "replace")
    return str(value) if value is not None else None
