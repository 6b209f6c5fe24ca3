"""Case 10 of issue 15: SIGTERM during the start-up INT8 build and during a background rebuild, on
the real daemon (`python -m agent run`, the demo's ONet on ONNX Runtime, a real mosquitto).

A gate no candidate can pass (min_cosine 1.0: no quantized model is exact) makes the search try
every calibrator and then mixed precision: long enough to stop it half-way."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from agent.demo.sample import Mosquitto, find_mosquitto
from tests.faults.daemon_proc import AgentProcess, answers_of, send_command, signing_key, stop_all, write_config

SHUTDOWN_S = 3.0
REBUILD_SHUTDOWN_S = 8.0  # a candidate's quantization (ONNX Runtime's calibration, seconds here) is not cut short
UNPASSABLE = {"min_cosine": 1.0, "mixed_precision": True, "max_excluded_nodes": 64, "max_excluded_fraction": 1.0}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.mqtt,
    pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed"),
]


def search_folders(state: Path) -> list:
    return list((state / "calibration").glob("*/.search-*"))


def test_sigterm_during_the_start_up_int8_build_is_honoured_within_the_shutdown_timeout(tmp_path, demo_dir):
    broker = Mosquitto(str(find_mosquitto()), tmp_path / "broker").start()
    config = write_config(
        tmp_path,
        demo_dir,
        broker.port,
        precision="int8",
        gate=UNPASSABLE,
        accuracy={"spot_labels": str(demo_dir / "spot_labels")},
        daemon={"shutdown_timeout_s": SHUTDOWN_S},
    )
    try:
        agent = AgentProcess(config)
        agent.wait_for_log("INT8 attempt 1", 60)  # inside the gate search
        agent.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        code = agent.proc.wait(SHUTDOWN_S + 5)
        took = time.monotonic() - sent
        agent.stop()
        assert code == 0, agent.log[-3000:]
        assert took < SHUTDOWN_S, (took, agent.log[-3000:])
        assert "stopped before serving (signal during the start-up build)" in agent.log
        assert "INT8 attempt 13" not in agent.log  # the search did not run to its end
        assert search_folders(tmp_path / "state") == []
    finally:
        stop_all()
        broker.stop()


def test_sigterm_during_a_background_rebuild_answers_the_send_and_leaves_no_search_folder(tmp_path, demo_dir):
    broker = Mosquitto(str(find_mosquitto()), tmp_path / "broker").start()
    config = write_config(
        tmp_path,
        demo_dir,
        broker.port,
        gate=UNPASSABLE,
        accuracy={"spot_labels": str(demo_dir / "spot_labels")},
        commands={"enabled": True, "key_file": str(signing_key(tmp_path))},
        daemon={"shutdown_timeout_s": REBUILD_SHUTDOWN_S},
    )
    try:
        agent = AgentProcess(config)
        agent.wait_for_log("ready:", 60)
        sender = send_command(config, "rebuild", "precision=int8")
        agent.wait_for_log("INT8 attempt 1", 60)  # the rebuild is inside its gate search
        agent.proc.send_signal(signal.SIGTERM)
        code = agent.proc.wait(REBUILD_SHUTDOWN_S + 5)
        agent.stop()
        answers = answers_of(sender, 30)
        assert code == 0, agent.log[-3000:]
        assert answers and answers[-1]["status"] == "error", (answers, agent.log[-3000:])
        assert "cancelled: the daemon is stopping" in answers[-1]["error"]["message"]
        assert agent.log.index("cancelled (a stop was asked for)") < agent.log.index("stopped after")
        assert search_folders(tmp_path / "state") == []
    finally:
        stop_all()
        broker.stop()
