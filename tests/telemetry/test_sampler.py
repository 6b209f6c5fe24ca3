"""The sampler thread against a sysfs tree whose readings change while it runs."""

from __future__ import annotations

import time

import pytest

from agent.telemetry.energy import energy_over
from agent.telemetry.monitor import Telemetry
from agent.telemetry.sampler import Sampler


def test_rate_history_and_monotonic_stamps(sysfs_copy) -> None:
    telemetry = Telemetry(str(sysfs_copy("orin_nx_jp6")), tegrastats="off", nvml="off", rapl="off")
    with Sampler(telemetry, rate_hz=20.0, history_s=10.0) as sampler:
        time.sleep(0.5)
    samples = sampler.samples()
    assert 6 <= len(samples) <= 14  # 20 Hz for 0.5 s, with scheduling slack on a shared machine
    stamps = [s.t for s in samples]
    assert stamps == sorted(stamps)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert sum(gaps) / len(gaps) == pytest.approx(0.05, rel=0.5)
    assert all(s.total_rail == "VDD_IN" for s in samples)


def test_energy_of_a_step_change(sysfs_copy) -> None:
    root = sysfs_copy("orin_nx_jp6")
    current = root / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1/curr1_input"
    current.write_text("1000\n")  # 5008 mV x 1000 mA = 5008 mW
    telemetry = Telemetry(str(root), tegrastats="off", nvml="off", rapl="off")
    with Sampler(telemetry, rate_hz=20.0) as sampler:
        time.sleep(0.2)
        t0 = time.monotonic()
        time.sleep(0.3)
        current.write_text("2000\n")  # 10016 mW
        time.sleep(0.3)
        t1 = time.monotonic()
        sampler.wait_past(t1, timeout_s=1.0)
        report, why = energy_over(sampler.power_points(t0, t1), t0, t1, 100, "VDD_IN")
    assert why is None and report is not None
    # between 5.008 and 10.016 W; about halfway, since the step is near the middle
    assert 5.0 < report["mean_w"] < 10.1
    assert report["mean_w"] == pytest.approx(7.5, abs=2.0)  # the step falls between two samples


def test_a_failing_read_does_not_end_sampling(sysfs_copy) -> None:
    telemetry = Telemetry(str(sysfs_copy("nano_l4t32")), tegrastats="off", nvml="off", rapl="off")
    real_read = telemetry.read
    calls = {"n": 0}

    def flaky():
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("sensor went away")
        return real_read()

    telemetry.read = flaky  # type: ignore[assignment]
    with Sampler(telemetry, rate_hz=20.0) as sampler:
        time.sleep(0.3)
    assert sampler.errors == 1 and len(sampler.samples()) >= 3


def test_rate_limits() -> None:
    telemetry = Telemetry("/nonexistent", tegrastats="off", nvml="off", rapl="off")
    with pytest.raises(ValueError, match="outside"):
        Sampler(telemetry, rate_hz=50.0)
