"""The TensorRT backend against the strict double of every release: build, load, run, fail well.

Builds run for real in a child process (which imports the double); engines run through the
runtime and the host-memory stand-in of the CUDA layer, and their outputs are compared with
ONNX Runtime on the same model.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import onnxruntime as ort
import pytest

from agent.backends.base import BuildOutput, BuildRequest, Int8Calibration
from agent.backends.tensorrt.build_child import BuildFailed
from agent.util.errors import EngineIncompatible, InputError
from calibration.trt_cache import tensorrt_version_number

from .conftest import use_double
from .host_cuda import HostCudaLayer

ONET_SHAPES = {"input_3": (4, 48, 48, 3)}


def _backend() -> Any:
    from agent.backends.tensorrt.backend import TensorRTBackend

    return TensorRTBackend(cuda_factory=HostCudaLayer)


def _build(
    tmp: Path,
    model: str,
    precision: str,
    shapes: Dict[str, Tuple[int, ...]],
    calibration: Optional[Int8Calibration] = None,
    **options: Any,
) -> Tuple[BuildOutput, str]:
    engine = str(tmp / f"{precision}.engine")
    options.setdefault("build_timeout_s", 60)
    out = _backend().build(BuildRequest(model, precision, shapes, options, calibration), engine)
    return out, engine


def _reference(model: str, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def test_fp32_build_load_and_data_flow(trt: Any, tmp_path: Path, onet_path: str) -> None:
    out, engine_path = _build(tmp_path, onet_path, "fp32", ONET_SHAPES)
    assert out.precision == "fp32" and out.notes == []
    assert out.details["tensorrt"] == trt.__version__
    assert ("EXPLICIT_BATCH" in out.details["network_flags"]) == trt.__version__.startswith("8.")
    assert out.details["builder_flags"] == []
    assert out.details["profiles"]["input_3"] == [[1, 48, 48, 3], [4, 48, 48, 3], [4, 48, 48, 3]]
    assert any("Engine built: fp32" in line for line in out.log)
    if trt.__version__.startswith(("10", "11")):
        assert "[PROGRESS] Building engine: done" in out.log
    engine = _backend().load(engine_path, {"cuda_graph": False})
    x = np.random.default_rng(0).standard_normal((3, 48, 48, 3)).astype(np.float32)  # batch 3 is in [1, 4]
    outputs, times = engine.infer_timed({"input_3": x})
    expected = _reference(onet_path, {"input_3": x})
    assert set(outputs) == set(expected)
    for name in expected:
        np.testing.assert_allclose(outputs[name], expected[name], rtol=1e-6, atol=1e-7)
    assert set(times) == {"h2d", "compute", "d2h"} and all(t >= 0 for t in times.values())
    with pytest.raises(InputError, match="outside the engine's optimization profile"):
        engine.infer({"input_3": np.zeros((5, 48, 48, 3), np.float32)})
    engine.close()
    assert engine.cuda.closed


def test_fp16_uses_the_flag_or_converts_the_model(trt: Any, tmp_path: Path, onet_path: str) -> None:
    out, engine_path = _build(tmp_path, onet_path, "fp16", ONET_SHAPES)
    assert out.precision == "fp16"
    if hasattr(trt.BuilderFlag, "FP16"):
        assert out.details["builder_flags"] == ["FP16"] and not out.details["converted_fp16"]
    else:  # 11.x: no FP16 flag; the model is converted and the network (always) strongly typed
        assert out.details["converted_fp16"] and out.details["strongly_typed"]
        assert any("converted the ONNX model to FP16" in n for n in out.notes)
    engine = _backend().load(engine_path, {})
    assert [t.dtype for t in engine.inputs] == ["float32"]  # I/O stays FP32
    x = np.random.default_rng(2).standard_normal((4, 48, 48, 3)).astype(np.float32)
    np.testing.assert_allclose(
        engine.infer({"input_3": x})["softmax_2"], _reference(onet_path, {"input_3": x})["softmax_2"], atol=2e-3
    )


def test_int8_from_qdq_model(trt: Any, tmp_path: Path, qdq_path: str) -> None:
    out, engine_path = _build(tmp_path, qdq_path, "int8", {"x": (8, 16)})
    assert out.precision == "int8"
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        assert out.details["strongly_typed"] and out.details["builder_flags"] == []
    else:  # 8.x: weakly typed; FP16 for the unquantized layers on a GPU with fast FP16
        assert out.details["builder_flags"] == ["INT8", "FP16"]
    assert out.details["calibrator"] is None
    x = np.random.default_rng(3).standard_normal((8, 16)).astype(np.float32)
    engine = _backend().load(engine_path, {"cuda_graph": True})
    for _ in range(3):
        y = engine.infer({"x": x})["y"]
    np.testing.assert_allclose(y, _reference(qdq_path, {"x": x})["y"], rtol=1e-6)
    assert engine.cuda.capturing == ["begin", "end"] and engine.cuda.calls.count(("graph", "graph")) == 2


def test_int8_with_calibration_cache(trt: Any, tmp_path: Path, onet_path: str) -> None:
    cache = tmp_path / "calib.cache"
    header = f"TRT-{tensorrt_version_number(trt.__version__)}-EntropyCalibration2"
    cache.write_text(f"{header}\ninput_3: 3c010a14\n")
    calibration = Int8Calibration(cache_path=str(cache))
    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        with pytest.raises(InputError, match="no implicit INT8 calibration; build from the QDQ model"):
            _build(tmp_path, onet_path, "int8", ONET_SHAPES, calibration)
        return
    out, _ = _build(tmp_path, onet_path, "int8", ONET_SHAPES, calibration)
    assert out.precision == "int8" and out.details["builder_flags"] == ["INT8", "FP16"]
    assert out.details["calibrator"]["scales"] == "calibration cache"
    assert out.details["calibrator"]["batches_fed"] == 0
    assert any("Calibration cache read" in line for line in out.log)
    # A cache naming another release is skipped by TensorRT, which then asks the calibrator for batches;
    # without frames there are none: "Calibration failure" (NVIDIA/TensorRT#1378, defect 2).
    cache.write_text(
        "TRT-8601-EntropyCalibration2\ninput_3: 3c010a14\n"
        if "8.6" not in trt.__version__
        else "TRT-8502-EntropyCalibration2\ninput_3: 3c010a14\n"
    )
    with pytest.raises(BuildFailed, match="Calibration failure"):
        _build(tmp_path, onet_path, "int8", ONET_SHAPES, calibration)


@pytest.mark.parametrize("release", ["8.6.1", "11.1"])  # one code path; both sides of the release difference
def test_int8_without_qdq_or_cache_is_refused(trt: Any, tmp_path: Path, onet_path: str) -> None:
    with pytest.raises(InputError, match="give a QDQ model"):
        _build(tmp_path, onet_path, "int8", ONET_SHAPES)


@pytest.mark.parametrize("release", ["8.5.2", "11.1"])  # one code path; both sides of the release difference
def test_timing_cache_is_persisted_and_reused(trt: Any, tmp_path: Path, onet_path: str) -> None:
    first, _ = _build(tmp_path, onet_path, "fp32", ONET_SHAPES)
    second, _ = _build(tmp_path, onet_path, "fp32", ONET_SHAPES)
    cache = first.details["timing_cache"]
    assert cache["loaded_bytes"] == 0 and cache["saved_bytes"] > 0
    assert Path(cache["path"]).parent == tmp_path / "timing-cache"
    assert second.details["timing_cache"]["loaded_bytes"] == cache["saved_bytes"]
    assert any("Loaded 3 timing cache entries" in line for line in second.log)
    off, _ = _build(tmp_path, onet_path, "fp32", ONET_SHAPES, timing_cache=False)
    assert off.details["timing_cache"] is None


@pytest.mark.parametrize("release", ["8.5.2", "10.13.3"])  # one code path; both sides of the release difference
def test_optimization_level_where_the_release_has_it(trt: Any, tmp_path: Path, onet_path: str) -> None:
    out, _ = _build(tmp_path, onet_path, "fp32", ONET_SHAPES, builder_optimization_level=2, workspace_mb=256)
    assert out.details["workspace_mb"] == 256
    if hasattr(trt.IBuilderConfig, "builder_optimization_level"):
        assert out.details["builder_optimization_level"] == 2 and out.notes == []
    else:
        assert out.details["builder_optimization_level"] is None
        assert out.notes == ["builder_optimization_level 2 ignored: TensorRT 8.5.2 has no optimization levels"]


@pytest.mark.parametrize("release", ["8.5.2", "10.13.3"])
def test_platform_without_fast_int8_is_said_not_substituted(
    release: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, qdq_path: str
) -> None:
    use_double(monkeypatch, release, fast_int8=False, fast_fp16=False)
    out, _ = _build(tmp_path, qdq_path, "int8", {"x": (2, 16)})
    assert out.precision == "int8"
    assert out.notes[-1] == (
        "this GPU has no fast INT8 (platform_has_fast_int8 is False): the engine is INT8 as asked, "
        "expect little or no speed-up"
    )
    first = "no fast FP16: the layers left unquantized run FP32" if release == "8.5.2" else "strongly typed INT8"
    assert len(out.notes) == 2 and first in out.notes[0]


@pytest.mark.parametrize("release", ["8.6.1", "11.1"])
def test_dla_core_with_gpu_fallback(
    release: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, qdq_path: str
) -> None:
    use_double(monkeypatch, release, dla_cores=2)
    out, _ = _build(tmp_path, qdq_path, "int8", {"x": (2, 16)}, dla_core=1, gpu_fallback=True)
    assert out.details["dla_core"] == 1
    use_double(monkeypatch, release, dla_cores=0)
    with pytest.raises(InputError, match="dla_core 1: this device has 0 DLA core"):
        _build(tmp_path, qdq_path, "int8", {"x": (2, 16)}, dla_core=1)


def test_engine_from_another_release_is_incompatible_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, qdq_path: str
) -> None:
    use_double(monkeypatch, "8.5.2")
    _, engine_path = _build(tmp_path, qdq_path, "int8", {"x": (2, 16)})
    use_double(monkeypatch, "10.3.0")
    with pytest.raises(EngineIncompatible, match="expecting library version 10.3.0 got 8.5.2.*rebuild"):
        _backend().load(engine_path, {})
    Path(engine_path).write_bytes(b"\x00" * 64)
    with pytest.raises(EngineIncompatible, match="Magic tag does not match"):
        _backend().load(engine_path, {})


@pytest.mark.slow
@pytest.mark.parametrize(
    "crash, options, reason",
    [
        ("segv", {}, "died of SIGSEGV"),
        ("hang", {"build_timeout_s": 2}, "ran over build_timeout_s=2 s"),
        ("oom", {"build_memory_limit_mb": 600}, "over build_memory_limit_mb=600"),
    ],
)
def test_crashing_child_build_is_a_failed_build(
    crash: str, options: Dict[str, Any], reason: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, qdq_path: str
) -> None:
    use_double(monkeypatch, "10.13.3", crash=crash)
    with pytest.raises(BuildFailed, match=reason):
        _build(tmp_path, qdq_path, "int8", {"x": (2, 16)}, **options)
    assert not (tmp_path / "int8.engine").exists()
    monkeypatch.setenv("EDGE_TRT_DOUBLE_DEVICE", "{}")  # the parent is unharmed: the next build works
    out, _ = _build(tmp_path, qdq_path, "int8", {"x": (2, 16)})
    assert out.precision == "int8"


def test_device_identity(trt: Any) -> None:
    identity = _backend().device_identity()
    assert identity == {
        "tensorrt": trt.__version__,
        "gpu": "host stand-in",
        "compute_capability": "0.0",
        "l4t": identity["l4t"],
        "dla_cores": 0,
    }


def test_cli_without_tensorrt_exits_2_with_one_sentence(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EDGE_TRT_DOUBLE_RELEASE")}
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "build", "--backend", "tensorrt", "--set", f"paths.state_dir={tmp_path}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(Path(__file__).resolve().parents[2]),
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    assert "tensorrt" in message and "sudo apt install python3-libnvinfer" in message


@pytest.mark.parametrize("release", ["10.3.0"])
def test_bad_model_and_missing_profile_are_input_errors(trt: Any, tmp_path: Path, onet_path: str) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    with pytest.raises(InputError, match="bad.onnx"):
        _build(tmp_path, str(bad), "fp32", ONET_SHAPES)
    import onnx
    from onnx import TensorProto, helper

    dangling = helper.make_graph(  # valid protobuf, invalid graph: the parser (in the child) refuses it
        [helper.make_node("Relu", ["nowhere"], ["y"])],
        "g",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    onnx.save(helper.make_model(dangling), str(bad))
    with pytest.raises(InputError, match="TensorRT cannot parse .*bad.onnx"):
        _build(tmp_path, str(bad), "fp32", ONET_SHAPES)
    with pytest.raises(InputError, match="no shape for model input 'input_3'"):
        _build(tmp_path, onet_path, "fp32", {"other": (1, 48, 48, 3)})
