"""Issue 12 defects against the behavioural double: typing and flags, plugins, CUDA object lifetimes.

Builds run in the build child (which imports the double); engines run through the runtime and the
counting host stand-in of the CUDA layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from agent.backends.base import BuildRequest, Int8Calibration
from agent.backends.tensorrt.fp16 import convert_to_fp16
from agent.util.errors import InputError
from calibration.trt_cache import tensorrt_version_number

from .conftest import use_double
from .host_cuda import HostCudaLayer


def _backend() -> Any:
    from agent.backends.tensorrt.backend import TensorRTBackend

    return TensorRTBackend(cuda_factory=HostCudaLayer)


def _save(tmp: Path, name: str, nodes: Any, inits: Any, out_shape: Any) -> str:
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        inits,
    )
    path = str(tmp / f"{name}.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


@pytest.fixture
def fp16_model(tmp_path: Path) -> str:
    """An FP16-typed model (FP16 weights, FP32 I/O behind Casts), as a user might bring one."""
    weights = numpy_helper.from_array(np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32), "W")
    fp32 = _save(tmp_path, "dense", [helper.make_node("MatMul", ["x", "W"], ["y"])], [weights], [1, 4])
    convert_to_fp16(fp32, str(tmp_path / "dense16.onnx"))
    return str(tmp_path / "dense16.onnx")


def _build(tmp: Path, model: str, precision: str, cache: Optional[str] = None) -> Any:
    engine = str(tmp / f"{precision}.engine")
    calibration = Int8Calibration(cache_path=cache) if cache else None
    request = BuildRequest(model, precision, {"x": (1, 16)}, {"build_timeout_s": 60}, calibration)
    return _backend().build(request, engine), engine


def test_fp16_typed_model_builds_fp16_kernels(trt: Any, tmp_path: Path, fp16_model: str) -> None:
    """Defect 4: on 8.x an FP16-typed model without BuilderFlag.FP16 ran FP32 kernels (NVIDIA/TensorRT#3057)."""
    out, _ = _build(tmp_path, fp16_model, "fp16")
    assert "Engine layer info: fp16 layers, unquantized layers fp16" in "\n".join(out.log)


def test_fp16_typed_model_int8_with_cache_builds(trt: Any, tmp_path: Path, fp16_model: str) -> None:
    """Defect 4: on 10.x it got STRONGLY_TYPED and INT8 together, which TensorRT refuses."""
    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        return  # 11.x: no implicit INT8 (test_plan covers the refusal)
    cache = tmp_path / "calib.cache"
    cache.write_text(f"TRT-{tensorrt_version_number(trt.__version__)}-EntropyCalibration2\nx: 3c010a14\n")
    out, _ = _build(tmp_path, fp16_model, "int8", str(cache))
    assert not out.details["strongly_typed"] and out.details["builder_flags"] == ["INT8", "FP16"]
    assert "Engine layer info: int8 layers, unquantized layers fp16" in "\n".join(out.log)


def test_int8_from_qdq_falls_back_to_fp16_on_weakly_typed_releases(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, qdq_path: str
) -> None:
    """Defect 4: INT8 builds left the unquantized layers FP32 (efficientdet build_engine.py sets FP16 too)."""
    use_double(monkeypatch, "8.6.1")
    out = _backend().build(BuildRequest(qdq_path, "int8", {"x": (2, 16)}, {}), str(tmp_path / "q.engine"))
    assert "Engine layer info: int8 layers, unquantized layers fp16" in "\n".join(out.log)


def _plugin_model(tmp: Path) -> str:
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("EfficientNMS_TRT", ["r"], ["y"])]
    return _save(tmp, "with_plugin", nodes, [], [1, 16])


def test_the_double_needs_plugins_initialised_to_parse_a_plugin_op(trt: Any, tmp_path: Path) -> None:
    path = _plugin_model(tmp_path)

    def parse() -> Any:
        logger = trt.ILogger()
        network = trt.Builder(logger).create_network(0)
        parser = trt.OnnxParser(network, logger)
        return parser.parse_from_file(path), parser

    if trt.__version__.startswith("8."):
        return  # create_network(0) is implicit batch there; the build path covers 8.x
    ok, parser = parse()
    assert not ok and "Plugin not found" in str(parser.get_error(0))
    trt.init_libnvinfer_plugins(trt.ILogger(), "")
    assert parse()[0]


def test_the_double_needs_plugins_initialised_to_deserialize_a_plugin_engine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from agent.backends.tensorrt.build_child import make_logger

    trt = use_double(monkeypatch, "10.3.0")
    logger = make_logger(trt, [])
    trt.init_libnvinfer_plugins(logger, "")
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse_from_file(_plugin_model(tmp_path))
    plan = builder.build_serialized_network(network, builder.create_builder_config())
    trt = use_double(monkeypatch, "10.3.0")  # a fresh process's registry: no plugins yet
    messages: List[str] = []
    logger = make_logger(trt, messages)
    assert trt.Runtime(logger).deserialize_cuda_engine(plan) is None
    assert "could not find plugin: EfficientNMS_TRT" in messages[0]
    trt.init_libnvinfer_plugins(logger, "")
    assert trt.Runtime(logger).deserialize_cuda_engine(plan) is not None


def test_plugin_ops_build_and_load(trt: Any, tmp_path: Path) -> None:
    """Defect 5: plugins were never initialised, in the build child nor before deserializing."""
    out, engine_path = _build(tmp_path, _plugin_model(tmp_path), "fp32")
    assert out.precision == "fp32"
    engine = _backend().load(engine_path, {})
    assert [t.name for t in engine.outputs] == ["y"]
    engine.close()


def test_every_cuda_object_is_destroyed_on_close_and_recapture(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, qdq_path: str
) -> None:
    """Defect 7: streams, events and graph executables were never destroyed."""
    use_double(monkeypatch, "10.13.3")
    backend = _backend()
    engine_path = str(tmp_path / "q.engine")
    backend.build(BuildRequest(qdq_path, "int8", {"x": (8, 16)}, {}), engine_path)
    layers = []
    for _ in range(3):  # three loads and closes, as engine swaps do
        engine = backend.load(engine_path, {"cuda_graph": True})
        for batch in (2, 2, 8, 8, 4):  # a shape change re-binds and re-captures the graph
            engine.infer({"x": np.ones((batch, 16), np.float32)})
        engine.close()
        layers.append(engine.cuda)
    for layer in layers:
        assert layer.created == {"stream": 1, "event": 4, "graph": 3}
        assert layer.destroyed == layer.created and not layer.live


def _nonzero_model(tmp: Path) -> str:
    graph = helper.make_graph(
        [helper.make_node("NonZero", ["x"], ["i"]), helper.make_node("Cast", ["i"], ["y"], to=TensorProto.INT32)],
        "nonzero",  # INT32 out: 8.x has no INT64 tensors
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [2, "K"])],
    )
    path = str(tmp / "nonzero.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_data_dependent_outputs_come_through_the_output_allocator(trt: Any, tmp_path: Path) -> None:
    """Defect 6: buffers were sized from get_tensor_shape, which is -1 for a NonZero output."""
    model = _nonzero_model(tmp_path)
    engine_path = str(tmp_path / "nz.engine")
    _backend().build(BuildRequest(model, "fp32", {"x": (4, 4)}, {"build_timeout_s": 60}), engine_path)
    engine = _backend().load(engine_path, {"cuda_graph": True})
    assert [t.shape for t in engine.outputs] == [(2, None)]
    for x in (np.eye(4, dtype=np.float32), np.zeros((3, 4), np.float32), np.ones((4, 4), np.float32)):
        np.testing.assert_array_equal(engine.infer({"x": x})["y"], np.stack(np.nonzero(x)))
    assert not engine.cuda.capturing  # the allocator picks addresses per run: no graph capture
    engine.close()
    assert engine.cuda.destroyed == engine.cuda.created


@pytest.fixture(scope="module")
def small_resnet(tmp_path_factory: pytest.TempPathFactory) -> str:
    from benchmarks.resnet import resnet18

    path = str(tmp_path_factory.mktemp("resnet") / "resnet.onnx")
    onnx.save(resnet18(size=(32, 32)), path)
    return path


def _calibration_batches() -> List[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32) for _ in range(2)]


@pytest.mark.parametrize("release", ["8.5.2", "10.3.0"])
def test_onnxruntime_default_qdq_fails_to_parse_as_on_tensorrt(
    trt: Any, release: str, tmp_path: Path, small_resnet: str
) -> None:
    """Defect 1: ONNX Runtime's quantize_static defaults put INT32 biases behind DequantizeLinear, which
    TensorRT's parser refuses ("only activation types allowed as input to this layer",
    microsoft/onnxruntime#14229); the project's TensorRT-form QDQ model of the same network builds."""
    from onnxruntime import quantization as q

    from calibration.calibrators import QuantizeSettings, make_reader, quantize_qdq

    theirs = str(tmp_path / "ort-default.onnx")
    q.quantize_static(small_resnet, theirs, make_reader("input", _calibration_batches()))
    shapes = {"input": (1, 3, 32, 32)}
    with pytest.raises(InputError, match="only activation types allowed as input to this layer"):
        _backend().build(BuildRequest(theirs, "int8", shapes, {"build_timeout_s": 60}), str(tmp_path / "a.engine"))
    ours = str(tmp_path / "ours.onnx")
    quantize_qdq(small_resnet, ours, "input", _calibration_batches(), QuantizeSettings("minmax"))
    out = _backend().build(BuildRequest(ours, "int8", shapes, {"build_timeout_s": 60}), str(tmp_path / "b.engine"))
    assert out.precision == "int8"


@pytest.mark.parametrize(
    "zero, message",
    [
        (np.uint8(0), "Found invalid input type of UINT8"),
        (np.int8(3), "TensorRT only supports symmetric quantization"),
    ],
)
def test_the_double_refuses_what_tensorrts_qdq_importer_refuses(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, zero: np.generic, message: str
) -> None:
    use_double(monkeypatch, "8.6.1")
    inits = [numpy_helper.from_array(np.float32(0.02), "s"), numpy_helper.from_array(zero, "z")]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["y"], name="dq"),
    ]
    model = _save(tmp_path, "qdq", nodes, inits, [1, 16])
    with pytest.raises(InputError, match=message):
        _backend().build(BuildRequest(model, "int8", {"x": (1, 16)}, {}), str(tmp_path / "e.engine"))
