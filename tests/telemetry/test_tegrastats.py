"""tegrastats lines of each generation (tests/fixtures/tegrastats) -> the snapshot field names."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import pytest

from agent.telemetry.tegrastats import TegrastatsParseError, TegrastatsProcess, parse_line

from .conftest import TEGRASTATS


def first_line(name: str, index: int = 0) -> dict:
    return parse_line((TEGRASTATS / f"{name}.txt").read_text().splitlines()[index])


def test_nano_two_values_without_unit() -> None:
    s = first_line("nano_l4t32")
    assert s["rails"] == {"POM_5V_IN": 4520.0, "POM_5V_GPU": 0.0, "POM_5V_CPU": 1078.0}
    assert s["rails_avg_mw"]["POM_5V_IN"] == 4680.0
    assert (s["total_mw"], s["total_rail"], s["total_kind"]) == (4520.0, "POM_5V_IN", "input")
    assert s["ram_mb"] == {"used": 1180, "total": 3965} and s["swap_mb"] == {"used": 149, "total": 1024}
    assert (s["emc_load_pct"], s["emc_mhz"], s["gpu_load_pct"], s["gpu_mhz"]) == (10.0, 1600.0, 0.0, 76.0)
    assert "PMIC" not in s["temperatures_c"] and s["temperatures_c"]["thermal"] == 59.75
    assert "NVENC" not in s["rails"] and "APE" not in s["rails"]  # clocks, not rails


def test_off_cores() -> None:
    s = first_line("nano_l4t32", 1)
    assert s["cpu"] == [{"load_pct": 10.0, "mhz": 1479.0}, None, None, {"load_pct": 0.0, "mhz": 1479.0}]
    assert s["gpu_load_pct"] == 99.0


def test_tx2_input_rail_among_six() -> None:
    s = first_line("tx2_l4t32")
    assert len(s["rails"]) == 6 and s["total_rail"] == "VDD_IN" and s["total_mw"] == 2323.0


def test_xavier_has_no_input_rail_so_a_labeled_sum() -> None:
    s = first_line("xavier_agx_l4t32")
    assert s["total_kind"] == "sum" and s["total_mw"] == 0 + 311 + 1244 + 0 + 155 + 1846
    assert s["total_rail"] == "sum(CPU+CV+GPU+SOC+SYS5V+VDDRQ)"
    assert s["temperatures_c"]["GPU"] == 37.0  # a temperature named like a rail stays a temperature


def test_orin_jp5_milliwatts_nc_and_minus_256() -> None:
    s = first_line("orin_agx_jp5")
    assert s["rails"] == {"VDD_GPU_SOC": 2392.0, "VDD_CPU_CV": 399.0, "VIN_SYS_5V0": 2819.0, "VDDQ_VDD2_1V8AO": 304.0}
    assert s["total_kind"] == "sum" and s["total_mw"] == 2392 + 399 + 2819  # memory rail kept, not added
    assert "VDDQ_VDD2_1V8AO not added" in s["total_note"]
    assert s["temperatures_c"]["GPU"] is None and s["temperatures_c"]["CV0"] is None
    assert s["temperatures_c"]["tj"] == 43.75
    assert s["gpu_mhz"] == 305.0  # GR3D_FREQ 0%@[305,305]: first GPC


def test_orin_jp6_timestamp_and_lowercase_temperatures() -> None:
    s = first_line("orin_nx_jp6")
    assert s["timestamp"] == "11-29-2026 18:30:00"
    assert s["total_rail"] == "VDD_IN" and s["total_mw"] == 4586.0
    assert s["temperatures_c"]["gpu"] == 44.906


def test_thor_three_values_and_no_gr3d() -> None:
    s = first_line("thor_jp7")
    assert s["rails"]["VIN"] == 87426.0 and s["rails_avg_mw"]["VIN"] == 43713.0
    assert (s["total_rail"], s["total_kind"]) == ("VIN", "input")
    assert s["gpu_load_pct"] is None
    two = first_line("thor_jp7", 1)
    assert two["rails"]["VDD_GPU"] == 12037.0 and two["rails_avg_mw"]["VDD_GPU"] == 7676.0


def test_thor_negative_rail_kept_flagged_and_summed_without_vin() -> None:
    with_vin, without_vin = first_line("thor_jp7", 2), first_line("thor_jp7", 3)
    assert with_vin["rails"]["VDD_GPU"] == -392.0 and with_vin["negative_rails"] == ["VDD_GPU"]
    assert with_vin["total_rail"] == "VIN" and "VDD_GPU" in with_vin["total_note"]
    assert without_vin["rails"] == {"VDD_GPU": -392.0, "VDD_CPU_SOC_MSS": 3924.0, "VIN_SYS_5V0": 5064.0}
    assert without_vin["total_rail"] == "sum(VDD_CPU_SOC_MSS+VDD_GPU+VIN_SYS_5V0)"
    assert without_vin["total_mw"] == -392 + 3924 + 5064 and "read negative" in without_vin["total_note"]


def test_thor_clocks_without_load() -> None:
    idle = first_line("thor_jp7", 4)
    assert idle["gpu_load_pct"] is None and idle["gpu_mhz"] == 1574.0
    assert idle["gpu_gpc_mhz"] == [1574.0, 1574.0, 1574.0]
    assert (idle["emc_load_pct"], idle["emc_mhz"]) == (None, 4266.0)
    assert idle["temperatures_c"] == {"cpu": 49.75, "tj": 51.218, "gpu": 51.218}
    loaded = first_line("thor_jp7", 5)
    assert (loaded["gpu_load_pct"], loaded["gpu_mhz"], loaded["emc_load_pct"]) == (87.0, 1574.0, 34.0)
    assert set(loaded["rails"]) == {"VDD_GPU", "VDD_CPU_SOC_MSS", "VIN_SYS_5V0", "VIN"}
    assert "NVENC0_FREQ" not in loaded["rails"] and loaded["total_mw"] == 124486.0


def test_gr3d2_is_the_second_gpc() -> None:
    s = first_line("orin_agx_jp5", 2)
    assert (s["gpu_load_pct"], s["gpu_mhz"], s["gpu_gpc_mhz"]) == (0.0, 114.0, [114.0, 114.0])
    assert parse_line("RAM 1/2MB GR3D_FREQ 5%@[300,off,600]")["gpu_gpc_mhz"] == [300.0, None, 600.0]


def test_pmic_alarm_state_is_no_temperature() -> None:
    s = first_line("nano_l4t32", 2)
    assert "PMIC" not in s["temperatures_c"] and s["placeholder_temperatures_c"] == {"PMIC": 100.0}
    assert s["temperatures_c"]["CPU"] == 40.5


def test_one_value_needs_its_unit() -> None:
    s = parse_line("RAM 100/200MB CPU [1%@100] VDD_IN 5000mW VDD_SOC 700mW APE 150")
    assert s["rails"] == {"VDD_IN": 5000.0, "VDD_SOC": 700.0}
    assert s["rails_avg_mw"]["VDD_IN"] is None


def test_not_a_tegrastats_line() -> None:
    with pytest.raises(TegrastatsParseError, match="not a tegrastats line"):
        parse_line("hello world")


def test_every_fixture_line_parses_with_a_total() -> None:
    for path in sorted(TEGRASTATS.glob("*.txt")):
        for line in path.read_text().splitlines():
            assert parse_line(line)["total_mw"] is not None, path.name


def test_process_reader_runs_a_real_subprocess(tmp_path: Path) -> None:
    """A stand-in tegrastats (a script printing fixture lines at --interval) read line by line."""
    script = tmp_path / "tegrastats"
    lines = (TEGRASTATS / "orin_nx_jp6.txt").read_text().splitlines() + ["garbage line"]
    script.write_text(
        f"#!{sys.executable}\nimport sys, time\n"
        f"interval = int(sys.argv[sys.argv.index('--interval') + 1]) / 1000\n"
        f"for line in {lines!r} * 3:\n    print(line, flush=True)\n    time.sleep(interval)\n"
        "time.sleep(30)\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    got = []
    reader = TegrastatsProcess(lambda t, s: got.append((t, s)), interval_ms=20, command=str(script))
    reader.start()
    deadline = time.monotonic() + 10
    while len(got) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    reader.stop()
    assert len(got) >= 3
    assert all(s["total_rail"] == "VDD_IN" for _, s in got)
    stamps = [t for t, _ in got]
    assert stamps == sorted(stamps)
    assert reader.bad_lines >= 1
    assert not reader.running


def test_telemetry_falls_back_to_tegrastats_on_the_live_system(tmp_path: Path, monkeypatch) -> None:
    """No INA rails readable under / here, so a tegrastats on PATH becomes the power source."""
    from agent.telemetry.monitor import Telemetry
    from agent.telemetry.sampler import Sampler

    script = tmp_path / "tegrastats"
    line = (TEGRASTATS / "thor_jp7.txt").read_text().splitlines()[0]
    script.write_text(
        f"#!{sys.executable}\nimport sys, time\n"
        f"interval = int(sys.argv[sys.argv.index('--interval') + 1]) / 1000\n"
        f"while True:\n    print({line!r}, flush=True)\n    time.sleep(interval)\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    telemetry = Telemetry("/", tegrastats="on", nvml="off", rapl="off", tegrastats_interval_ms=50)
    if telemetry.rails:
        pytest.skip("this machine has INA rails; sysfs wins over tegrastats")
    assert telemetry.power_source == "tegrastats"
    with Sampler(telemetry, rate_hz=20.0) as sampler:
        snapshot = telemetry.read_first(timeout_s=5.0)
        t = time.monotonic()
        assert sampler.wait_past(t, timeout_s=2.0)
    assert (snapshot["total_mw"], snapshot["total_rail"]) == (87426.0, "VIN")
    assert snapshot["system"]["mem_total_mb"] > 0 and 0 <= snapshot["system"]["cpu_pct"] <= 100  # psutil, live only


def test_a_tegrastats_that_went_quiet_gives_no_stale_power(tmp_path: Path, monkeypatch) -> None:
    from agent.telemetry.monitor import Telemetry

    script = tmp_path / "tegrastats"
    line = (TEGRASTATS / "orin_nx_jp6.txt").read_text().splitlines()[0]
    script.write_text(f"#!{sys.executable}\nimport time\nprint({line!r}, flush=True)\ntime.sleep(60)\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    telemetry = Telemetry("/", tegrastats="on", nvml="off", rapl="off", tegrastats_interval_ms=50)
    if telemetry.rails:
        pytest.skip("this machine has INA rails; sysfs wins over tegrastats")
    telemetry.start()
    try:
        assert telemetry.read_first(timeout_s=5.0)["total_mw"] == 4586.0
        time.sleep(1.2)
        stale = telemetry.read()
    finally:
        telemetry.stop()
    assert stale["total_mw"] is None and stale["total_note"].startswith("no tegrastats line for")
