"""NVML on a real NVIDIA GPU (skipped without one): every field the reader maps is read, and the
energy counter advances with the power drawn."""

from __future__ import annotations

import time

import pytest

from agent.telemetry.monitor import Telemetry
from agent.telemetry.nvml import NvmlReader

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def reader() -> NvmlReader:
    try:
        return NvmlReader()
    except Exception as exc:  # ImportError, NVMLError: no NVIDIA GPU here
        pytest.skip(f"no NVML GPU: {exc}")


def test_every_field_reads_on_a_datacenter_gpu(reader: NvmlReader) -> None:
    gpu = reader.read_gpus()[0]
    assert gpu["unsupported"] == [], gpu
    assert 0 <= gpu["gpu_load_pct"] <= 100 and 0 <= gpu["memory_used_mb"] < gpu["memory_total_mb"]  # v2: 0 idle
    assert 0 < gpu["sm_mhz"] <= gpu["sm_max_mhz"] and 0 < gpu["mem_mhz"] <= gpu["mem_max_mhz"]
    assert 10 < gpu["temperature_c"] < 100 and 0 < gpu["power_mw"] <= gpu["power_limit_mw"] * 1.1
    assert gpu["clocks_event_reasons"]["mask"].startswith("0x") and reader.driver


def test_energy_counter_matches_power_over_a_second(reader: NvmlReader) -> None:
    first = reader.read_gpus()[0]
    t0 = time.monotonic()
    time.sleep(1.0)
    last = reader.read_gpus()[0]
    mean_mw = (last["energy_mj"] - first["energy_mj"]) / (time.monotonic() - t0)
    assert mean_mw == pytest.approx((first["power_mw"] + last["power_mw"]) / 2, rel=0.25)


def test_snapshot_fills_the_flat_fields_from_nvml() -> None:
    try:
        telemetry = Telemetry("/", tegrastats="off", nvml="on", rapl="off")
    except Exception as exc:
        pytest.skip(str(exc))
    if telemetry.nvml is None:
        pytest.skip("; ".join(telemetry.notes))
    s = telemetry.read()
    assert s["gpu_load_pct"] is not None and s["clocks"]["gpu_mhz"] and s["temperatures_c"]["GPU0"]
    assert s["energy_counters_mj"]["GPU0"] > 0 and s["total_mw"] > 0
