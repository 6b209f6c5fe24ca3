"""The start-up baseline (issue 15, soak finding): recorded before serving begins, so live inference
never pauses for it; a stop (SIGTERM) during it still ends the daemon within its shutdown bound."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pytest

from agent.accuracy import baselines
from agent.build import engine as building
from agent.config.load import load_config
from agent.config.sections import Config
from agent.daemon import jobs
from agent.daemon.supervisor import Daemon
from agent.model.pipeline import Pipeline, make_decoder
from tests.faults.daemon_proc import AgentProcess, stop_all, write_config


def big_spot_set(demo_dir: Path, work: Path, copies: int) -> Path:
    """The demo's spot-labeled set with each image present ``copies`` times (same labels)."""
    target = work / "big_spot"
    for folder in (demo_dir / "spot_labels").iterdir():
        (target / folder.name).mkdir(parents=True)
        for image in folder.iterdir():
            for n in range(copies):
                shutil.copyfile(image, target / folder.name / f"{n}-{image.name}")
    return target


def baseline_seconds(config: Config) -> float:
    """How long recording a baseline on ``config``'s spot set takes here (into its own state dir)."""
    report = building.build(config, precision="fp32").to_json()
    engine, model = building.load_built(config, report)
    started = time.monotonic()
    jobs.baseline_of_serving(
        config, Pipeline(engine, model, make_decoder(config.model, model)), report, lambda: None, "x"
    )
    return time.monotonic() - started


@pytest.mark.slow
def test_the_start_up_baseline_never_pauses_live_inference(demo_dir, tmp_path):
    spot = big_spot_set(demo_dir, tmp_path, 5)
    overrides = [f"accuracy.spot_labels={spot}", "source.loop=true", "schedules.check_s=0", "schedules.benchmark_s=0"]
    probe = Config.from_node(
        load_config(str(demo_dir / "demo.yaml"), overrides + [f"paths.state_dir={tmp_path / 'p'}"])
    )
    bound_ms = probe.daemon.max_swap_gap_ms
    assert baseline_seconds(probe) * 1000.0 > bound_ms  # queued on the inference thread, it would break the bound

    cfg = load_config(str(demo_dir / "demo.yaml"), overrides + [f"paths.state_dir={tmp_path / 'state'}"])
    daemon = Daemon(cfg, None, max_frames=60, environ={})
    assert daemon.run() == 0
    assert daemon.loop is not None and daemon.loop.inferences >= 60
    assert baselines.versions(str(tmp_path / "state")) == [1]  # recorded, before the first inference
    assert baselines.load(str(tmp_path / "state"), 1)["reason"] == "promotion"
    assert daemon.loop.max_gap_ms < bound_ms, daemon.loop.max_gap_ms


@pytest.mark.slow
def test_sigterm_during_the_start_up_baseline_stops_within_the_bound(demo_dir, tmp_path):
    spot = big_spot_set(demo_dir, tmp_path, 40)  # 8000 images: tens of seconds of evaluation
    config = write_config(tmp_path, demo_dir, 1, accuracy={"spot_labels": str(spot)}, mqtt={"enabled": False})
    timeout_s = Config.from_node(load_config(str(config))).daemon.shutdown_timeout_s
    try:
        agent = AgentProcess(config)
        agent.wait_for_log("recording the start-up baseline before serving", 120)
        time.sleep(1.0)
        started = time.monotonic()
        agent.proc.send_signal(signal.SIGTERM)
        assert agent.proc.wait(timeout_s + 5) == 0, agent.log[-3000:]
        assert time.monotonic() - started < timeout_s, agent.log[-3000:]
        assert "baseline: not recorded (a stop was asked for)" in agent.log
        assert baselines.versions(str(tmp_path / "state")) == []
        assert "ready:" not in agent.log
    finally:
        stop_all()
