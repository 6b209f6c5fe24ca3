"""Rails and totals read from the sysfs trees of each Jetson generation (tests/fixtures/sysfs)."""

from __future__ import annotations

import pytest

from agent.telemetry.monitor import Telemetry
from agent.telemetry.power import SUM_NOTE, discover_rails, total_power
from agent.telemetry.sysfs import SysfsRoot

from .conftest import SYSFS

# device tree -> (rails expected, total rail label, kind, total mW)
EXPECTED = {
    # iio: in_power is read directly (mW)
    "nano_l4t32": ({"POM_5V_IN": 3544.0, "POM_5V_GPU": 397.0, "POM_5V_CPU": 796.0}, "POM_5V_IN", "input", 3544.0),
    "tx2_l4t32": (
        {
            "VDD_SYS_GPU": 152.0,
            "VDD_SYS_SOC": 609.0,
            "VDD_4V0_WIFI": 0.0,
            "VDD_IN": 2322.0,
            "VDD_SYS_CPU": 152.0,
            "VDD_SYS_DDR": 390.0,
        },
        "VDD_IN",
        "input",
        2322.0,
    ),
    "xavier_agx_l4t32": (
        {"GPU": 0.0, "CPU": 304.0, "SOC": 1235.0, "CV": 0.0, "VDDRQ": 152.0, "SYS5V": 1842.0},
        "sum(CPU+CV+GPU+SOC+SYS5V+VDDRQ)",
        "sum",
        3533.0,
    ),
    # hwmon: mV x mA / 1000; NC channels and the in7 shunt sum are not rails
    "orin_agx_jp5": (
        {"VDD_GPU_SOC": 2392.8, "VDD_CPU_CV": 398.8, "VIN_SYS_5V0": 2817.9, "VDDQ_VDD2_1V8AO": 302.4},
        "sum(VDD_CPU_CV+VDD_GPU_SOC+VIN_SYS_5V0)",  # VDDQ_VDD2_1V8AO kept, not added (SUM_EXCLUDED)
        "sum",
        5609.5,
    ),
    "orin_nx_jp6": ({"VDD_IN": 4587.3, "VDD_CPU_GPU_CV": 480.8, "VDD_SOC": 1402.2}, "VDD_IN", "input", 4587.3),
    # INA238 power1_input is in uW; it is Thor's module input
    "thor_jp7": (
        {"VDD_GPU": 3000.0, "VDD_CPU_SOC_MSS": 6510.0, "VIN_SYS_5V0": 6520.0, "VIN": 34842.0},
        "VIN",
        "input",
        34842.0,
    ),
}


@pytest.mark.parametrize("tree", sorted(EXPECTED))
def test_rails_and_total_of_each_generation(tree: str) -> None:
    rails, label, kind, total = EXPECTED[tree]
    snapshot = Telemetry(str(SYSFS / tree), tegrastats="off", nvml="off", rapl="off").read()
    assert snapshot["rails"] == rails
    assert snapshot["total_rail"] == label
    assert snapshot["total_kind"] == kind
    assert snapshot["total_mw"] == pytest.approx(total, abs=0.2)
    assert snapshot["power_source"] == "sysfs"
    assert snapshot["total_note"].startswith(SUM_NOTE if kind == "sum" else f"module input rail {label}")


def test_a_sum_never_counts_the_input_rail() -> None:
    total = total_power({"VDD_IN": 5000.0, "VDD_CPU_GPU_CV": 1000.0, "VDD_SOC": 1500.0})
    assert (total.mw, total.rail, total.kind) == (5000.0, "VDD_IN", "input")
    summed = total_power({"GPU": 100.0, "CPU": 200.0})
    assert (summed.mw, summed.rail, summed.kind) == (300.0, "sum(CPU+GPU)", "sum")


def test_unreadable_rails_are_named_and_left_out_of_a_sum() -> None:
    total = total_power({"GPU": None, "CPU": 200.0})
    assert total.mw == 200.0 and total.rail == "sum(CPU)"
    assert "GPU" in (total.note or "")
    assert total_power({"VDD_IN": None}).mw is None
    assert total_power({}).mw is None and total_power({}).note == "no power rails found"


def test_reading_follows_the_files(sysfs_copy) -> None:
    root = sysfs_copy("orin_nx_jp6")
    hwmon = root / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1"
    telemetry = Telemetry(str(root), tegrastats="off", nvml="off", rapl="off")
    (hwmon / "curr1_input").write_text("2000\n")
    assert telemetry.read()["total_mw"] == pytest.approx(5008 * 2000 / 1000)
    (hwmon / "curr1_input").write_text("garbage\n")
    snapshot = telemetry.read()
    assert snapshot["rails"]["VDD_IN"] is None and snapshot["total_mw"] is None
    assert "VDD_IN gave no reading" in snapshot["total_note"]


def test_over_current_alarm_is_reported() -> None:
    snapshot = Telemetry(str(SYSFS / "orin_nx_jp6"), tegrastats="off", nvml="off", rapl="off").read()
    assert snapshot["over_current_alarms"] == ["VDD_CPU_GPU_CV:curr2_max_alarm"]


def test_thor_ina3221_is_read_once_even_though_hwmon_lists_it_too() -> None:
    names = [r.name for r in discover_rails(SysfsRoot(str(SYSFS / "thor_jp7")))]
    assert names == ["VDD_GPU", "VDD_CPU_SOC_MSS", "VIN_SYS_5V0", "VIN"]


def test_no_power_source_gives_a_reason(tmp_path) -> None:
    telemetry = Telemetry(str(tmp_path), tegrastats="auto", nvml="off", rapl="auto")
    assert telemetry.power_source is None
    reason = telemetry.power_unavailable_reason()
    assert reason is not None and "INA3221" in reason and "rapl" in reason
    assert telemetry.read()["total_mw"] is None


def test_agx_orin_memory_rail_is_kept_but_not_added_next_to_vin_sys_5v0() -> None:
    rails = {"VDD_GPU_SOC": 2392.0, "VDD_CPU_CV": 399.0, "VIN_SYS_5V0": 2819.0, "VDDQ_VDD2_1V8AO": 304.0}
    total = total_power(rails)
    assert (total.mw, total.rail) == (2392 + 399 + 2819, "sum(VDD_CPU_CV+VDD_GPU_SOC+VIN_SYS_5V0)")
    assert "VDDQ_VDD2_1V8AO not added" in (total.note or "")
    alone = total_power({"VDD_GPU_SOC": 2392.0, "VDDQ_VDD2_1V8AO": 304.0})  # nothing it could be inside
    assert alone.rail == "sum(VDDQ_VDD2_1V8AO+VDD_GPU_SOC)" and "not added" not in (alone.note or "")


def test_negative_rails_are_summed_as_measured_and_named() -> None:
    total = total_power({"VDD_GPU": -392.0, "VDD_CPU_SOC_MSS": 3924.0, "VIN_SYS_5V0": 5064.0})
    assert total.mw == -392 + 3924 + 5064 and total.rail == "sum(VDD_CPU_SOC_MSS+VDD_GPU+VIN_SYS_5V0)"
    assert "read negative" in (total.note or "") and "VDD_GPU" in (total.note or "")
    with_input = total_power({"VDD_GPU": -392.0, "VIN": 15004.0})
    assert with_input.mw == 15004.0 and "VDD_GPU" in (with_input.note or "")
