"""A stand-in ``pynvml`` for machines without an NVIDIA GPU, built from nvidia-ml-py's real API.

Names, signatures, return shapes and constants are those of nvidia-ml-py 13.615.71's pynvml.py:
NVML_ERROR_NOT_SUPPORTED = 3, NVML_CLOCK_SM = 1, NVML_CLOCK_MEM = 2, NVML_TEMPERATURE_GPU = 0,
nvmlMemory_v2 = 0x02000028; NVMLError(value) with ``.value``; nvmlDeviceGetUtilizationRates ->
struct with ``.gpu`` / ``.memory`` (%); nvmlDeviceGetMemoryInfo -> ``.total/.free/.used`` bytes
(with version=nvmlMemory_v2 also ``.reserved``, and ``.used`` without it); power and limits in mW,
energy in mJ, clocks in MHz. Each GPU is a dict of readings (a callable is called at each
read); a reading set to None raises
NVMLError(NVML_ERROR_NOT_SUPPORTED), as the real library does for a query the GPU lacks.
"""

from __future__ import annotations

import types
from typing import Any, Dict, List, Optional

NVML_ERROR_NOT_SUPPORTED = 3
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_TEMPERATURE_GPU = 0
NVML_MEMORY_V2 = 0x02000028
MIB = 2**20


def h200_idle() -> Dict[str, Any]:
    """Readings as the real H200 gave them idle (docs/telemetry-gpu-run/compare.jsonl)."""
    return {
        "name": "NVIDIA H200",
        "util": (0, 0),
        "memory": (143771 * MIB, 615 * MIB, 0),  # total, reserved, used (v2)
        "clocks": {NVML_CLOCK_SM: 345, NVML_CLOCK_MEM: 3201},
        "max_clocks": {NVML_CLOCK_SM: 1980, NVML_CLOCK_MEM: 3201},
        "temperature": 36,
        "power": 79762,
        "limit": 700000,
        "energy": 16284961,
        "reasons": 0x1,
    }


def fake_pynvml(gpus: List[Dict[str, Any]], event_reasons_api: bool = True, driver: str = "580.159.04") -> Any:
    module = types.ModuleType("pynvml")

    class NVMLError(Exception):
        def __init__(self, value: int) -> None:
            super().__init__(value)
            self.value = value

    def reading(handle: int, key: str, sub: Optional[int] = None) -> Any:
        value = gpus[handle][key]
        if callable(value):  # a reading that changes with time (an energy counter)
            value = value()
        if value is not None and sub is not None:
            value = value.get(sub)
        if value is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return value

    def memory_info(handle: int, version: Optional[int] = None) -> Any:
        total, reserved, used = reading(handle, "memory")
        if version == NVML_MEMORY_V2:
            return types.SimpleNamespace(
                version=version, total=total, reserved=reserved, free=total - reserved - used, used=used
            )
        return types.SimpleNamespace(total=total, free=total - reserved - used, used=used + reserved)

    def utilization(handle: int) -> Any:
        gpu, memory = reading(handle, "util")
        return types.SimpleNamespace(gpu=gpu, memory=memory)

    module.NVMLError = NVMLError
    module.NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED
    module.NVML_CLOCK_SM, module.NVML_CLOCK_MEM = NVML_CLOCK_SM, NVML_CLOCK_MEM
    module.NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU
    module.nvmlMemory_v2 = NVML_MEMORY_V2
    module.nvmlInit = lambda: None
    module.nvmlSystemGetDriverVersion = lambda: driver
    module.nvmlDeviceGetCount = lambda: len(gpus)
    module.nvmlDeviceGetHandleByIndex = lambda index: index
    module.nvmlDeviceGetName = lambda h: reading(h, "name")
    module.nvmlDeviceGetUtilizationRates = utilization
    module.nvmlDeviceGetMemoryInfo = memory_info
    module.nvmlDeviceGetClockInfo = lambda h, kind: reading(h, "clocks", kind)
    module.nvmlDeviceGetMaxClockInfo = lambda h, kind: reading(h, "max_clocks", kind)
    module.nvmlDeviceGetTemperature = lambda h, sensor: reading(h, "temperature")
    module.nvmlDeviceGetPowerUsage = lambda h: reading(h, "power")
    module.nvmlDeviceGetEnforcedPowerLimit = lambda h: reading(h, "limit")
    module.nvmlDeviceGetTotalEnergyConsumption = lambda h: reading(h, "energy")
    module.nvmlDeviceGetCurrentClocksThrottleReasons = lambda h: reading(h, "reasons")
    if event_reasons_api:  # the newer name; without it the reader falls back to the one above
        module.nvmlDeviceGetCurrentClocksEventReasons = lambda h: reading(h, "reasons")
    return module
