"""The NVML adapter against nvidia-ml-py's API names (nvmlInit, nvmlDeviceGetCount,
nvmlDeviceGetHandleByIndex, nvmlDeviceGetPowerUsage in mW, NVMLError): no NVIDIA GPU here, so a
strict stand-in module with exactly those names plays pynvml."""

from __future__ import annotations

import sys
import types

import pytest

from agent.telemetry.monitor import Telemetry


def fake_pynvml(powers):
    module = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    def power(handle):
        if powers[handle] is None:
            raise NVMLError("Not Supported")
        return powers[handle]

    module.NVMLError = NVMLError
    module.nvmlInit = lambda: None
    module.nvmlDeviceGetCount = lambda: len(powers)
    module.nvmlDeviceGetHandleByIndex = lambda index: index
    module.nvmlDeviceGetPowerUsage = power
    return module


def test_gpu_board_power_when_there_are_no_jetson_rails(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([71234, None]))
    telemetry = Telemetry(str(tmp_path), tegrastats="off", nvml="auto", rapl="off")
    assert telemetry.power_source == "nvml"
    s = telemetry.read()
    assert s["rails"] == {"GPU0": 71234.0, "GPU1": None}
    assert s["total_mw"] == 71234.0 and s["total_rail"] == "sum(GPU0+GPU1)" and "NVML" in s["total_note"]


def test_jetson_rails_win_over_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import SYSFS

    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([1000]))
    telemetry = Telemetry(str(SYSFS / "orin_nx_jp6"), tegrastats="off", nvml="auto", rapl="off")
    assert telemetry.power_source == "sysfs" and telemetry.nvml is None


def test_missing_nvml_is_a_note_not_an_error(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    telemetry = Telemetry(str(tmp_path), tegrastats="off", nvml="on", rapl="off")
    assert telemetry.power_source is None
    assert "nvidia-ml-py" in (telemetry.power_unavailable_reason() or "")
