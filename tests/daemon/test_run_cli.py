"""`edge-agent run` bounded runs without MQTT: --max-frames, the end of a file, bad sources."""

from __future__ import annotations

import json
import subprocess
import sys


def run_agent(*args: str, timeout: float = 90.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agent", "run", *args], capture_output=True, text=True, timeout=timeout
    )


def test_max_frames_prints_one_result_per_inference(demo_dir, tmp_path):
    result = run_agent(
        "-c",
        str(demo_dir / "demo.yaml"),
        "--set",
        f"paths.state_dir={tmp_path}",
        "--set",
        "source.loop=true",
        "--max-frames",
        "25",
        "--json",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 25
    assert all(r["engine"] == "onnxruntime fp32" and r["top"] for r in lines)
    assert [r["frame"] for r in lines] == sorted(r["frame"] for r in lines)
    assert "max frames reached" in result.stderr


def test_the_end_of_a_file_ends_the_run_with_every_frame_classified(demo_dir, tmp_path):
    result = run_agent(
        "-c", str(demo_dir / "demo.yaml"), "--set", f"paths.state_dir={tmp_path}", "--set", "source.fps=100", "--json"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    results = [json.loads(line) for line in result.stdout.splitlines()]
    truth = (demo_dir / "truth.txt").read_text().split()
    # latest frame wins: a frame may be dropped, but every classified one is right
    assert len(results) >= 20 and {r["top"][0]["label"] for r in results} == {"face", "non_face"}
    assert all(r["top"][0]["label"] == truth[r["frame"]] for r in results)
    assert "the source ended" in result.stderr


def test_a_missing_video_is_a_clear_input_error(demo_dir, tmp_path):
    result = run_agent(
        "-c",
        str(demo_dir / "demo.yaml"),
        "--set",
        f"paths.state_dir={tmp_path}",
        "--set",
        f"source.uri={tmp_path / 'nope.avi'}",
    )
    assert result.returncode == 2
    assert "source.uri: video file not found" in result.stderr


def test_csi_without_gstreamer_says_so_in_one_sentence(demo_dir, tmp_path):
    import cv2
    import pytest

    from agent.sources.decode import gstreamer_in_build

    if gstreamer_in_build(cv2.getBuildInformation()):
        pytest.skip("this OpenCV has GStreamer")
    result = run_agent(
        "-c", str(demo_dir / "demo.yaml"), "--set", f"paths.state_dir={tmp_path}", "--set", "source.kind=csi"
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "built without GStreamer" in errors[0] and "--system-site-packages" in errors[0]


def test_sigint_finishes_in_flight_work_and_exits_0(demo_dir, tmp_path):
    import signal
    import time

    cmd = [
        sys.executable,
        "-m",
        "agent",
        "run",
        "-c",
        str(demo_dir / "demo.yaml"),
        "--set",
        f"paths.state_dir={tmp_path}",
        "--set",
        "source.loop=true",
        "--set",
        "source.fps=50",
        "--json",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # serving
        assert json.loads(first)["engine"] == "onnxruntime fp32"
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err[-2000:]
        assert time.monotonic() - started < 10.0  # daemon.shutdown_timeout_s
        assert "signal SIGINT: stopping" in err and "stopped after" in err
        assert all(json.loads(line)["top"] for line in out.splitlines())  # no half-written result
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
