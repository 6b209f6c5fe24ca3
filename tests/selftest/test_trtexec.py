"""Reading trtexec's performance summary (a real log), and running a trtexec-shaped program."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from agent.selftest.trtexec import find_trtexec, parse_summary, run_trtexec, shapes_option

LOG = Path(__file__).resolve().parents[1] / "fixtures" / "trtexec" / "performance_summary.log"


def test_the_real_summary_is_read_whole() -> None:
    summary = parse_summary(LOG.read_text())
    assert summary["throughput_qps"] == 120.699
    assert summary["latency_ms"] == {
        "min": 9.11414,
        "max": 11.7442,
        "mean": 9.81005,
        "median": 9.76404,
        "p90": 10.1075,
        "p95": 10.1624,
        "p99": 11.4742,
    }
    assert summary["gpu_compute_time_ms"]["median"] == 8.19409
    assert set(summary) == {
        "throughput_qps",
        "latency_ms",
        "enqueue_time_ms",
        "h2d_latency_ms",
        "gpu_compute_time_ms",
        "d2h_latency_ms",
    }


def test_output_without_a_summary_reads_as_empty() -> None:
    assert parse_summary("[I] Engine loaded in 0.1 sec.\n&&&& PASSED TensorRT.trtexec") == {}


def _program(tmp_path: Path, body: str) -> str:
    path = tmp_path / "trtexec"
    path.write_text(f"#!{sys.executable}\nimport sys\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_a_run_passes_the_engine_and_reads_what_it_printed(tmp_path: Path) -> None:
    expected = ["--loadEngine=e.plan", "--shapes=input_3:4x48x48x3", "--useSpinWait"]
    program = _program(tmp_path, f"assert sys.argv[1:] == {expected!r}\nprint(open({str(LOG)!r}).read())")
    result = run_trtexec(program, "e.plan", {"input_3": (4, 48, 48, 3)})
    assert result["returncode"] == 0 and result["error"] is None
    assert result["summary"]["latency_ms"]["median"] == 9.76404


def test_a_failing_or_silent_run_says_why(tmp_path: Path) -> None:
    shapes = {"x": (1, 3)}
    failing = run_trtexec(
        _program(tmp_path, "sys.stderr.write('[E] Error opening engine file\\n'); sys.exit(1)"), "x", shapes
    )
    assert failing["returncode"] == 1 and "Error opening engine file" in failing["error"]
    silent = run_trtexec(_program(tmp_path, "print('hello')"), "x", shapes)
    assert silent["error"] == "no performance summary in trtexec's output"
    missing = run_trtexec(str(tmp_path / "absent"), "x", shapes)
    assert missing["returncode"] is None and "FileNotFoundError" in missing["error"]
    slow = run_trtexec(_program(tmp_path, "import time; time.sleep(5)"), "x", shapes, timeout_s=0.5)
    assert "TimeoutExpired" in slow["error"]


def test_an_explicit_binary_wins_and_path_is_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_trtexec("/opt/trt/bin/trtexec") == "/opt/trt/bin/trtexec"
    program = _program(tmp_path, "pass")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_trtexec() == program


def test_shapes_are_written_as_trtexec_reads_them() -> None:
    assert shapes_option({"images": (1, 3, 416, 416), "mask": (1, 8)}) == "--shapes=images:1x3x416x416,mask:1x8"
