"""The NVML adapter against a stand-in pynvml built from nvidia-ml-py's real names, return shapes
and constants (tests/telemetry/fake_nvml.py): the field mapping, units, NOT_SUPPORTED per field,
clock-event reason bits, per-GPU records and the snapshot's flat fields."""

from __future__ import annotations

import sys

import pytest

from agent.telemetry.monitor import Telemetry
from agent.telemetry.nvml import NvmlReader, decode_reasons, throttle_kinds

from .fake_nvml import NVML_CLOCK_MEM, NVML_CLOCK_SM, fake_pynvml, h200_idle


def test_every_field_mapped_with_its_unit() -> None:
    gpu = NvmlReader(fake_pynvml([h200_idle()])).read_gpus()[0]
    assert gpu == {
        "index": 0,
        "name": "NVIDIA H200",
        "gpu_load_pct": 0.0,
        "memory_load_pct": 0.0,
        "memory_used_mb": 0.0,  # v2: the driver's reserved 615 MiB are not "used" (nvidia-smi agrees)
        "memory_total_mb": 143771.0,
        "memory_reserved_mb": 615.0,
        "sm_mhz": 345.0,
        "mem_mhz": 3201.0,
        "sm_max_mhz": 1980.0,
        "mem_max_mhz": 3201.0,
        "temperature_c": 36.0,
        "power_mw": 79762.0,
        "power_limit_mw": 700000.0,
        "energy_mj": 16284961.0,
        "clocks_event_reasons": {"mask": "0x0000000000000001", "active": ["gpu_idle"], "throttling": []},
        "unsupported": [],
    }


def test_not_supported_empties_that_field_alone() -> None:
    old = dict(h200_idle(), energy=None, limit=None, max_clocks={NVML_CLOCK_SM: 1380, NVML_CLOCK_MEM: None})
    gpu = NvmlReader(fake_pynvml([old])).read_gpus()[0]
    assert gpu["energy_mj"] is None and gpu["power_limit_mw"] is None and gpu["mem_max_mhz"] is None
    assert gpu["sm_max_mhz"] == 1380.0 and gpu["power_mw"] == 79762.0
    assert gpu["unsupported"] == ["power_limit", "mem_max_mhz", "energy_mj"]


def test_older_bindings_fall_back_to_the_throttle_reasons_name_and_v1_memory() -> None:
    module = fake_pynvml([dict(h200_idle(), reasons=0x4)], event_reasons_api=False)
    del module.nvmlMemory_v2
    gpu = NvmlReader(module).read_gpus()[0]
    assert gpu["clocks_event_reasons"]["throttling"] == ["sw_power_cap"]
    assert gpu["memory_used_mb"] == 615.0 and gpu["memory_reserved_mb"] is None  # v1 counts reserved as used


@pytest.mark.parametrize(
    "mask, throttling, kinds",
    [
        (0x0, [], []),
        (0x1 | 0x10, [], []),  # idle, sync boost: not throttling
        (0x4, ["sw_power_cap"], ["power cap"]),
        (0x20 | 0x40, ["sw_thermal_slowdown", "hw_thermal_slowdown"], ["thermal"]),
        (0x8 | 0x80, ["hw_slowdown", "hw_power_brake_slowdown"], ["HW slowdown", "power cap"]),
    ],
)
def test_reason_bits(mask: int, throttling: list, kinds: list) -> None:
    decoded = decode_reasons(mask)
    assert decoded["throttling"] == throttling and throttle_kinds(decoded["throttling"]) == kinds
    assert decoded["mask"] == f"0x{mask:016x}"


def test_snapshot_per_gpu_and_flat_fields(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    busy = dict(h200_idle(), util=(95, 40), clocks={NVML_CLOCK_SM: 1545, NVML_CLOCK_MEM: 3201}, temperature=61)
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([busy, dict(h200_idle(), power=None, energy=None)]))
    telemetry = Telemetry(str(tmp_path), tegrastats="off", nvml="auto", rapl="off")
    assert telemetry.power_source == "nvml"
    s = telemetry.read()
    assert s["rails"] == {"GPU0": 79762.0, "GPU1": None}
    assert s["total_mw"] == 79762.0 and s["total_rail"] == "sum(GPU0+GPU1)" and "NVML" in s["total_note"]
    assert [g["index"] for g in s["gpus"]] == [0, 1]
    assert s["gpu_load_pct"] == 95.0 and s["clocks"]["gpu_mhz"] == 1545.0 and s["clocks"]["gpu_max_mhz"] == 1980.0
    assert s["temperatures_c"] == {"GPU0": 61.0, "GPU1": 36.0}
    assert s["energy_counters_mj"] == {"GPU0": 16284961.0}  # GPU1 has no counter


def test_jetson_rails_win_over_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import SYSFS

    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([h200_idle()]))
    telemetry = Telemetry(str(SYSFS / "orin_nx_jp6"), tegrastats="off", nvml="auto", rapl="off")
    assert telemetry.power_source == "sysfs" and telemetry.nvml is None


def test_missing_nvml_is_a_note_not_an_error(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    telemetry = Telemetry(str(tmp_path), tegrastats="off", nvml="on", rapl="off")
    assert telemetry.power_source is None
    assert "nvidia-ml-py" in (telemetry.power_unavailable_reason() or "")
