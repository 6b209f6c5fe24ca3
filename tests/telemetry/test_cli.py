"""`edge-agent telemetry` end to end, as a subprocess, on the fixture trees."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import SYSFS, TEGRASTATS


def edge_agent(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_once_json_on_a_sysfs_tree() -> None:
    done = edge_agent("telemetry", "--once", "--json", "--sysfs-root", str(SYSFS / "xavier_agx_l4t32"))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["rails"]["SYS5V"] == 1842.0
    assert out["total_mw"] == 3533.0 and out["total_rail"].startswith("sum(")
    assert out["temperatures_c"]["GPU-therm"] == 37.0
    assert out["gpu_load_pct"] == 1.2
    assert out["power_mode"] == "MAXN (id 0)" and out["power_unavailable_reason"] is None


def test_once_without_power_says_why(tmp_path) -> None:
    done = edge_agent("telemetry", "--once", "--json", "--sysfs-root", str(tmp_path), "--set", "telemetry.rapl=off")
    out = json.loads(done.stdout)
    assert out["total_mw"] is None and "no power source" in out["power_unavailable_reason"]


def test_stream_of_samples() -> None:
    done = edge_agent(
        "telemetry", "--json", "--count", "3", "--sysfs-root", str(SYSFS / "thor_jp7"), "--set", "telemetry.rate_hz=20"
    )
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == 3 and all(line["total_rail"] == "VIN" for line in lines)
    assert [line["t_monotonic"] for line in lines] == sorted(line["t_monotonic"] for line in lines)


def test_parse_tegrastats_from_stdin() -> None:
    text = "".join(p.read_text() for p in sorted(TEGRASTATS.glob("*.txt")))
    done = edge_agent("telemetry", "--parse-tegrastats", stdin=text + "\nnot tegrastats at all\n")
    objects = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(objects) == len(text.strip().splitlines())
    assert {o["total_rail"] for o in objects} >= {"POM_5V_IN", "VDD_IN", "VIN"}
    assert all({"rails", "total_mw", "total_rail", "temperatures_c", "gpu_load_pct"} <= set(o) for o in objects)
    assert done.returncode == 2 and "stdin line" in done.stderr


def test_bad_count_is_an_input_error() -> None:
    done = edge_agent("telemetry", "--count", "0", "--sysfs-root", str(SYSFS / "thor_jp7"))
    assert done.returncode == 2 and "--count" in done.stderr
