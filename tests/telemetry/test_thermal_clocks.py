"""Temperatures, GPU load, clocks and power mode from the device trees."""

from __future__ import annotations

import pytest

from agent.telemetry.monitor import Telemetry

from .conftest import SYSFS


def snapshot(tree: str):
    telemetry = Telemetry(str(SYSFS / tree), tegrastats="off", nvml="off", rapl="off")
    return telemetry, telemetry.read()


def test_minus_256_and_unreadable_zones_are_null() -> None:
    _, orin = snapshot("orin_agx_jp5")
    assert orin["temperatures_c"]["GPU-therm"] is None  # -256000 m°C: no reading
    assert orin["temperatures_c"]["CPU-therm"] == 43.75
    _, thor = snapshot("thor_jp7")
    assert thor["temperatures_c"]["gpu-thermal"] is None  # the file cannot be read
    assert thor["temperatures_c"]["tj-thermal"] == 55.1


@pytest.mark.parametrize(
    "tree, load, gpu_mhz",
    [
        ("nano_l4t32", 33.7, 921.6),
        ("tx2_l4t32", 0.0, 114.8),
        ("xavier_agx_l4t32", 1.2, 1377.0),
        ("orin_agx_jp5", 0.0, 306.0),
        ("orin_nx_jp6", 51.2, 918.0),
        ("thor_jp7", 0.0, 1575.0),
    ],
)
def test_gpu_load_in_tenths_of_a_percent_and_clock(tree: str, load: float, gpu_mhz: float) -> None:
    _, s = snapshot(tree)
    assert s["gpu_load_pct"] == load
    assert s["clocks"]["gpu_mhz"] == gpu_mhz


def test_pinned_clocks_and_power_mode() -> None:
    nx, s = snapshot("orin_nx_jp6")
    assert s["clocks"]["pinned"] is True  # min == max everywhere: jetson_clocks applied
    assert nx.describe()["power_mode"] == "MAXN (id 0)"
    tx2, s = snapshot("tx2_l4t32")
    assert s["clocks"]["pinned"] is False
    assert tx2.describe()["power_mode"] == "MAXP_CORE_ARM (id 3)"
    assert s["clocks"]["cpu_mhz"] == [345.6] * 6


def test_a_tree_without_jetson_files_has_nulls_not_errors(tmp_path) -> None:
    telemetry = Telemetry(str(tmp_path), tegrastats="off", nvml="off", rapl="off")
    s = telemetry.read()
    assert s["temperatures_c"] == {} and s["gpu_load_pct"] is None and s["clocks"]["pinned"] is None
    assert telemetry.describe()["power_mode"] is None
