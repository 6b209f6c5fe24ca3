"""Engine swaps between two inferences on a live loop with the real ONet engine; failures keep the old one."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

from agent.build import engine as building
from agent.config.load import load_config
from agent.config.sections import Config
from agent.daemon.loop import InferenceLoop
from agent.daemon.supervisor import warm_up
from agent.daemon.swap import Busy, EngineState, Handoff, Rebuilder, gate_verdict
from agent.sources.files import VideoFileSource
from agent.sources.latest import LatestFrameCapture
from agent.util.errors import GateFailed
from tests.faults.test_config_faults import two_input_model


@pytest.fixture
def live(demo_config, demo_dir, make_pipeline):
    """A running inference loop on the sample stream (100 frames/s) with the FP32 engine."""
    pipeline, report = make_pipeline(demo_config)
    capture = LatestFrameCapture(
        lambda: VideoFileSource(str(demo_dir / "stream.avi"), loop=True, fps=100), 2.0, (0.1, 1.0)
    )
    handoff = Handoff()
    results: List[Dict[str, Any]] = []
    swaps: List[Dict[str, Any]] = []
    loop = InferenceLoop(capture, pipeline, report, handoff, lambda: None, results.append, swaps.append)
    capture.start()
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    assert loop.first_inference.wait(10.0)
    yield loop, handoff, results, swaps
    loop.stop_event.set()
    capture.stop()
    thread.join(5.0)


def make_rebuilder(cfg, make_pipeline, handoff, build, done):
    return Rebuilder(
        build,
        lambda report: make_pipeline(cfg, report.get("built_precision", "fp32"))[0],
        warm_up,
        handoff,
        done.append,
    )


def wait_done(done: List[Dict[str, Any]], timeout: float = 30.0) -> Dict[str, Any]:
    end = time.monotonic() + timeout
    while not done and time.monotonic() < end:
        time.sleep(0.02)
    assert done, "the rebuild did not finish"
    return done[0]


def test_rebuild_swaps_between_inferences_while_inference_goes_on(live, demo_config, make_pipeline):
    loop, handoff, results, swaps = live
    done: List[Dict[str, Any]] = []
    old_engine = loop.pipeline.engine
    before = loop.inferences

    def slow_build(precision: str) -> Dict[str, Any]:
        time.sleep(0.5)  # the build takes a while: inference must go on meanwhile
        return building.build(demo_config, precision=precision, force=True).to_json()

    rebuilder = make_rebuilder(demo_config, make_pipeline, handoff, slow_build, done)
    rebuilder.start("fp32", "test")
    with pytest.raises(Busy):
        rebuilder.start("fp32", "second")
    result = wait_done(done)
    assert result["status"] == "swapped", result
    assert loop.inferences - before > 20  # ~50 frames served during the 0.5 s build
    assert len(swaps) == 1 and swaps[0]["gap_ms"] < demo_config.daemon.max_swap_gap_ms
    assert result["swap"]["gap_ms"] == swaps[0]["gap_ms"]
    assert loop.pipeline.engine is not old_engine
    count = loop.inferences
    time.sleep(0.3)
    assert loop.inferences > count  # the new engine serves
    assert rebuilder.running is None


def test_a_failed_gate_keeps_the_serving_engine(live, demo_config, make_pipeline):
    loop, handoff, results, swaps = live
    done: List[Dict[str, Any]] = []
    serving = loop.pipeline

    def gate_fails(precision: str) -> Dict[str, Any]:
        raise GateFailed("int8: recall of class face dropped by 12.0 pp (limit 1.0)")

    make_rebuilder(demo_config, make_pipeline, handoff, gate_fails, done).start("int8", "test")
    result = wait_done(done)
    assert result["status"] == "rejected" and "recall of class face" in result["error"]
    count = loop.inferences
    time.sleep(0.3)
    assert loop.pipeline is serving and loop.inferences > count and swaps == []


def not_onnx(demo_dir: Path, tmp_path: Path) -> Path:
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not an onnx model")
    return broken


@pytest.mark.parametrize(
    "make_model, message",
    [(not_onnx, "model.onnx"), (two_input_model, "has 2 inputs ['input_3', 'gain']; the pipeline feeds only")],
)
def test_a_build_error_keeps_the_serving_engine(
    live, demo_config, demo_dir, make_pipeline, tmp_path, make_model, message
):
    """A rebuild of a model file replaced by a broken or an unfeedable one fails naming why; inference goes on."""
    loop, handoff, results, swaps = live
    done: List[Dict[str, Any]] = []
    serving = loop.pipeline
    broken = make_model(demo_dir, tmp_path)
    bad_cfg = Config.from_node(
        load_config(str(demo_dir / "demo.yaml"), [f"paths.state_dir={tmp_path / 'state'}", f"model.path={broken}"])
    )
    make_rebuilder(demo_config, make_pipeline, handoff, lambda p: building.build(bad_cfg, p).to_json(), done).start(
        "fp32", "t"
    )
    result = wait_done(done)
    assert result["status"] == "failed" and message in result["error"] and str(broken) in result["error"], result
    assert loop.pipeline is serving and swaps == []


def test_gate_verdict():
    assert gate_verdict({"built_precision": "fp32"}) is None
    assert gate_verdict({"built_precision": "int8", "gate": {"passed": True}}) is None
    assert "failed the accuracy gate" in gate_verdict({"built_precision": "int8", "gate": {"passed": False}})
    assert "no accuracy gate result" in gate_verdict({"built_precision": "int8"})
    assert "no accuracy gate result" in gate_verdict({"precision": "fp16"})
    refused = gate_verdict(
        {
            "precision": "int8",
            "built_precision": "int8",
            "promoted": False,
            "gate": {"passed": False, "reason": "recall of face -12 pp"},
        }
    )
    assert "not promoted: recall of face -12 pp" in refused


def test_engine_state_keeps_current_and_previous(tmp_path):
    state = EngineState(str(tmp_path))
    assert state.read() == {}
    state.promote({"engine_path": "/e/fp32.onnx", "built_precision": "fp32"}, "fp32")
    state.promote({"engine_path": "/e/int8.onnx", "built_precision": "int8"}, "fp32")  # a rebuild command
    assert state.read()["current"]["engine_path"] == "/e/int8.onnx"
    assert state.read()["previous"]["engine_path"] == "/e/fp32.onnx"
    state.promote({"engine_path": "/e/int8.onnx", "built_precision": "int8"}, "fp32")  # same engine again
    assert state.read()["previous"]["engine_path"] == "/e/fp32.onnx"
    assert state.resumable("fp32")["engine_path"] == "/e/int8.onnx"  # restart: the operator's choice stays
    assert state.resumable("int8") is None  # the configuration changed while stopped: it applies
    state.path.write_text("{not json")
    assert state.read() == {}
