"""Case 10 of issue 15: a broken spot-labeled set made every benchmark fail after pausing live
inference. The real daemon with a set whose class folders have the wrong case: the benchmark
answers with its speed, its accuracy null and the reason naming the folder."""

from __future__ import annotations

import shutil

import pytest

from agent.demo.sample import Mosquitto, find_mosquitto
from tests.faults.daemon_proc import AgentProcess, answers_of, send_command, signing_key, stop_all, write_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.mqtt,
    pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed"),
]


def test_a_benchmark_on_a_broken_spot_set_reports_speed_and_why_accuracy_is_missing(tmp_path, demo_dir):
    spot = tmp_path / "spot"
    for label in ("face", "non_face"):
        shutil.copytree(demo_dir / "spot_labels" / label, spot / label.capitalize())  # Face, Non_face
    broker = Mosquitto(str(find_mosquitto()), tmp_path / "broker").start()
    config = write_config(
        tmp_path,
        demo_dir,
        broker.port,
        accuracy={"spot_labels": str(spot)},
        commands={"enabled": True, "key_file": str(signing_key(tmp_path))},
        bench={"warmup_s": 0.2, "min_duration_s": 1.0, "min_iterations": 20},
    )
    try:
        agent = AgentProcess(config)
        agent.wait_for_log("ready:", 60)
        answers = answers_of(send_command(config, "benchmark"), 90)
        assert answers and answers[-1]["status"] == "ok", (answers, agent.log[-3000:])
        report = answers[-1]["result"]
        assert report["accuracy"] is None
        assert "folder 'Face' does not match label 'face'" in report["accuracy_reason"]
        assert report["throughput_ips"] > 0 and report["latency_ms"]["p50"] > 0  # the speed is there
        assert agent.alive()
    finally:
        stop_all()
        broker.stop()
