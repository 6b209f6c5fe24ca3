"""Throttling verdicts from the snapshots of a window."""

from __future__ import annotations

from agent.telemetry.throttle import throttling


def snap(gpu_mhz, load=90.0, cpu=(2201.6, 2201.6), alarms=()):
    return {
        "gpu_load_pct": load,
        "clocks": {"gpu_mhz": gpu_mhz, "cpu_mhz": list(cpu)},
        "over_current_alarms": list(alarms),
    }


def test_steady_clocks_are_not_throttled() -> None:
    verdict = throttling([snap(1300.5), snap(1300.5), snap(1300.5)])
    assert verdict["throttled"] is False and verdict["reasons"] == []
    assert verdict["gpu"] == {"min_mhz": 1300.5, "max_mhz": 1300.5, "drop_pct": 0.0}


def test_gpu_clock_dropping_under_load() -> None:
    verdict = throttling([snap(1300.5), snap(1300.5), snap(918.0)])
    assert verdict["throttled"] is True
    assert verdict["reasons"] == ["GPU clock dropped 29.4% under load"]


def test_idle_gpu_clock_changes_are_dvfs_not_throttling() -> None:
    verdict = throttling([snap(1300.5, load=80), snap(306.0, load=2)])
    assert verdict["throttled"] is False


def test_cpu_drop_and_alarms() -> None:
    verdict = throttling([snap(None, cpu=(2201.6,)), snap(None, cpu=(1497.6,), alarms=["VDD_IN:curr1_crit_alarm"])])
    assert verdict["throttled"] is True
    assert verdict["over_current_alarms"] == ["VDD_IN:curr1_crit_alarm"]
    assert len(verdict["reasons"]) == 2


def test_nothing_known() -> None:
    verdict = throttling(
        [{"gpu_load_pct": None, "clocks": {"gpu_mhz": None, "cpu_mhz": []}, "over_current_alarms": []}]
    )
    assert verdict["throttled"] is None


def test_nvml_reasons_make_it_throttled_with_their_kind() -> None:
    from agent.telemetry.nvml import decode_reasons

    def snap(mask: int) -> dict:
        return {
            "gpu_load_pct": 100.0,
            "clocks": {"gpu_mhz": 1500.0},
            "gpus": [{"index": 0, "clocks_event_reasons": decode_reasons(mask)}],
        }

    power_capped = throttling([snap(0x0), snap(0x4), snap(0x4 | 0x20)])
    assert power_capped["throttled"] is True
    assert power_capped["nvml_reasons"] == {"0": ["sw_power_cap", "sw_thermal_slowdown"]}
    assert power_capped["reasons"] == ["GPU0 power cap, thermal (sw_power_cap, sw_thermal_slowdown)"]
    idle = throttling([snap(0x1), snap(0x1)])  # GpuIdle is not throttling, but the reasons were read
    assert idle["throttled"] is False and idle["reasons"] == [] and idle["nvml_reasons"] == {}
