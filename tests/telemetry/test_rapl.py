"""RAPL counters: power from energy differences, across a counter wrap."""

from __future__ import annotations

import pytest

from agent.telemetry.hostpower import RaplReader, rapl_delta_uj
from agent.telemetry.monitor import Telemetry
from agent.telemetry.sysfs import SysfsRoot


def test_delta_across_a_wrap() -> None:
    assert rapl_delta_uj(100.0, 350.0, 1000.0) == 250.0
    assert rapl_delta_uj(900.0, 100.0, 1000.0) == 200.0
    assert rapl_delta_uj(900.0, 100.0, None) is None


def test_power_from_two_reads(sysfs_copy) -> None:
    root = sysfs_copy("x86_rapl")
    counter = root / "sys/class/powercap/intel-rapl:0/energy_uj"
    times = iter([10.0, 12.0])
    reader = RaplReader(SysfsRoot(str(root)), clock=lambda: next(times))
    assert [d[0] for d in reader.domains] == ["RAPL_PACKAGE-0"]  # the sub-zone intel-rapl:0:0 is inside it
    assert reader.read_mw() == {"RAPL_PACKAGE-0": None}  # one read is no rate
    counter.write_text(str(123456789 + 30_000_000))  # 30 J in 2 s
    assert reader.read_mw()["RAPL_PACKAGE-0"] == pytest.approx(15000.0)


def test_rapl_total_is_labeled_as_a_partial_sum(sysfs_copy) -> None:
    telemetry = Telemetry(str(sysfs_copy("x86_rapl")), tegrastats="off", nvml="off", rapl="auto")
    assert telemetry.power_source == "rapl"
    s = telemetry.read()
    assert s["total_rail"] == "sum(RAPL_PACKAGE-0)" and "RAPL" in s["total_note"]


def test_first_reading_waits_for_a_second_counter_read(sysfs_copy) -> None:
    telemetry = Telemetry(str(sysfs_copy("x86_rapl")), tegrastats="off", nvml="off", rapl="auto")
    snapshot = telemetry.read_first(timeout_s=1.0)
    assert snapshot["total_mw"] == 0.0  # the fixture's counter does not move: 0 mW, but a reading
