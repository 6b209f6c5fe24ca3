"""Benchmark and accuracy check on the serving engine, as the daemon runs them between inferences."""

from __future__ import annotations

import time

from agent.config.load import load_config
from agent.config.sections import Config
from agent.daemon import jobs
from agent.sources.files import VideoFileSource
from agent.sources.latest import LatestFrameCapture

FAST_BENCH = ["bench.warmup_s=0.1", "bench.min_duration_s=0.3", "bench.min_iterations=20", "bench.max_duration_s=2"]


def live_capture(demo_dir, source_id: str = "") -> LatestFrameCapture:
    capture = LatestFrameCapture(
        lambda: VideoFileSource(str(demo_dir / "stream.avi"), loop=True, fps=200), 2.0, (0.1, 1.0), source_id=source_id
    )
    capture.start()
    assert capture.take(5.0) is not None
    return capture


def test_engine_benchmark_states_how_it_shared_the_device(demo_dir, tmp_path, make_pipeline):
    cfg = Config.from_node(load_config(str(demo_dir / "demo.yaml"), [f"paths.state_dir={tmp_path}"] + FAST_BENCH))
    pipeline, report = make_pipeline(cfg)
    capture = live_capture(demo_dir)
    progress = []
    try:
        result = jobs.benchmark(cfg, pipeline, report, [capture], lambda: progress.append(time.monotonic()))
    finally:
        capture.stop()
    assert result["mode"] == "engine" and result["throughput_ips"] > 0 and result["iterations"] >= 20
    sharing = result["device_sharing"]
    assert sharing["mode"] == "exclusive" and "paused" in sharing["how"]
    assert sharing["live_paused_s"] > 0.3 and sharing["frames_dropped_meanwhile"] > 0  # the camera kept going
    assert len(progress) >= result["iterations"]  # every benchmark inference fed the watchdog
    assert result["engine"]["precision"] == "fp32" and result["engine"]["id"] == report["cache_key"]


def test_pipeline_benchmark_reads_the_live_capture(demo_dir, tmp_path, make_pipeline):
    cfg = Config.from_node(
        load_config(str(demo_dir / "demo.yaml"), [f"paths.state_dir={tmp_path}", "bench.mode=pipeline"] + FAST_BENCH)
    )
    pipeline, report = make_pipeline(cfg)
    capture = live_capture(demo_dir)
    try:
        taken_before = capture.frames_taken
        result = jobs.benchmark(cfg, pipeline, report, [capture], lambda: None)
    finally:
        capture.stop()
    assert result["mode"] == "pipeline" and "frame_wait" in result["stages_ms"]
    assert capture.frames_taken - taken_before >= result["iterations"]


def test_pipeline_benchmark_reads_every_source_in_turn(demo_dir, tmp_path, make_pipeline):
    cfg = Config.from_node(
        load_config(str(demo_dir / "demo.yaml"), [f"paths.state_dir={tmp_path}", "bench.mode=pipeline"] + FAST_BENCH)
    )
    pipeline, report = make_pipeline(cfg)
    captures = [live_capture(demo_dir, "left"), live_capture(demo_dir, "right")]
    try:
        before = [c.frames_taken for c in captures]
        result = jobs.benchmark(cfg, pipeline, report, captures, lambda: None)
    finally:
        for capture in captures:
            capture.stop()
    taken = [c.frames_taken - b for c, b in zip(captures, before)]
    assert sum(taken) >= result["iterations"] and min(taken) >= result["iterations"] // 2 - 1  # round robin


def test_accuracy_check_on_the_serving_engine(demo_dir, tmp_path, make_pipeline):
    cfg = Config.from_node(load_config(str(demo_dir / "demo.yaml"), [f"paths.state_dir={tmp_path}"]))
    pipeline, report = make_pipeline(cfg)
    progress = []
    saved = jobs.baseline_of_serving(cfg, pipeline, report, lambda: progress.append(1), "promotion")
    check = jobs.accuracy_check(cfg, pipeline, report, lambda: progress.append(1))
    assert saved["version"] == 1
    assert check["confusion_matrix"] == [[100, 0], [0, 100]]
    assert check["drift"]["status"] == "ok" and check["engine"]["id"] == report["cache_key"]
    assert len(progress) >= 2  # inferences of both runs fed the watchdog
