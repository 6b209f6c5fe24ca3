"""Cases 8 and 9 of issue 15: a non-UTF-8 byte in the configuration file, and an ONNX model with two
inputs. Real bytes on disk, the real CLI in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import yaml
from onnx import TensorProto, helper

from agent.util import packaged
from tests.faults.daemon_proc import REPO

LATIN1_LINE = b"# site: Z\xfcrich\n"  # what an editor saving Latin-1 writes


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], capture_output=True, text=True, cwd=str(REPO), timeout=300
    )


def latin1_config(demo_dir: Path, tmp_path: Path) -> Path:
    config = tmp_path / "agent.yaml"
    text = (demo_dir / "demo.yaml").read_bytes()
    config.write_bytes(text.replace(b"\n", b"\n" + LATIN1_LINE, 1))
    return config


def test_config_check_and_run_name_the_byte_that_is_not_utf8(demo_dir, tmp_path):
    config = latin1_config(demo_dir, tmp_path)
    for command in (["config", "check"], ["run", "--max-frames", "1"]):
        result = cli(*command, "-c", str(config), "--set", f"paths.state_dir={tmp_path / 'state'}")
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and "UnicodeDecodeError" not in result.stderr
        assert f"{config}:2: not UTF-8: byte 0xfc at column 10" in result.stderr


def two_input_model(demo_dir: Path, tmp_path: Path) -> Path:
    """The demo's ONet with a second input ('gain') the graph needs: ONNX Runtime refuses to run without it."""
    data = yaml.safe_load((demo_dir / "demo.yaml").read_text())
    model = onnx.load(packaged.resolve(data["model"]["path"]))
    graph = model.graph
    graph.input.append(helper.make_tensor_value_info("gain", TensorProto.FLOAT, [1]))
    graph.node.append(helper.make_node("Identity", ["gain"], ["gain_out"]))
    graph.output.append(helper.make_tensor_value_info("gain_out", TensorProto.FLOAT, [1]))
    path = tmp_path / "two_inputs.onnx"
    onnx.save(model, str(path))
    return path


TWO_INPUT_COMMANDS = (
    ["config", "check"],
    ["run", "--max-frames", "5"],
    ["bench", "--duration", "0.2"],
    ["build", "--precision", "fp32"],
    ["calibrate", "--frames", "2"],
)


def test_a_model_with_two_inputs_is_refused_by_every_command_that_prepares_it(demo_dir, tmp_path):
    """The check is in prepare_model, so each command refuses the model the same way (exit 2)."""
    model = two_input_model(demo_dir, tmp_path)
    common = ["-c", str(demo_dir / "demo.yaml"), "--set", f"model.path={model}"]
    common += ["--set", f"paths.state_dir={tmp_path / 'state'}"]
    for command in TWO_INPUT_COMMANDS:
        result = cli(*command, *common)
        assert result.returncode == 2, (command, result.stdout, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, result.stderr[-2000:]
        assert "has 2 inputs" in result.stderr and "cannot feed ['gain']" in result.stderr, result.stderr[-2000:]


def test_an_int8_start_and_a_calibration_refuse_the_model_before_any_work(demo_dir, tmp_path):
    """No INT8 build falls back to FP32 and no calibration frame is collected for a model none could serve."""
    model = two_input_model(demo_dir, tmp_path)
    common = ["-c", str(demo_dir / "demo.yaml"), "--set", f"model.path={model}"]
    common += ["--set", f"paths.state_dir={tmp_path / 'state'}"]
    started = cli("run", "--max-frames", "5", "--set", "precision=int8", *common)
    assert started.returncode == 2 and "cannot feed ['gain']" in started.stderr, started.stderr[-2000:]
    assert "not promoted" not in started.stderr and "serving FP32" not in started.stderr, started.stderr[-2000:]
    calibrated = cli("calibrate", "--frames", "2", *common)
    assert calibrated.returncode == 2 and "cannot feed ['gain']" in calibrated.stderr
    assert "calibration frames" not in calibrated.stderr, calibrated.stderr[-2000:]
