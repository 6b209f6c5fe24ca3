"""TensorRT's explicit-quantization rules (calibration.conformance) on the QDQ models calibration
makes for TensorRT (ResNet-18-shaped, ONet, PP-OCRv4 det) and on ONNX Runtime's default output,
and the ONNX Runtime CPU model's Q/DQ count against ONNX Runtime's own defaults."""

from __future__ import annotations

import collections
import importlib.util
from pathlib import Path
from typing import List

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from agent.config.load import load_config
from agent.config.sections import Config
from agent.model.pipeline import prepare_model
from agent.util import packaged
from agent.util.errors import InputError
from benchmarks.resnet import resnet18
from calibration import conformance
from calibration.calibrators import QuantizeSettings, make_reader, quantize_qdq
from calibration.normalize import normalize_file

TRT = QuantizeSettings("minmax")  # symmetric INT8: the TensorRT form
ORT = QuantizeSettings("minmax", symmetric_activations=False)


def _random_batches(shape: tuple, count: int = 3) -> List[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(count)]


@pytest.fixture(scope="module")
def resnet(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("resnet") / "resnet.onnx")
    onnx.save(resnet18(size=(64, 64)), path)
    return path


def _quantized(source: str, target: Path, settings: QuantizeSettings, shape: tuple, name: str = "input"):
    out = str(target)
    quantize_qdq(source, out, name, _random_batches(shape), settings)
    return onnx.load(out)


def _ops(model) -> collections.Counter:
    return collections.Counter(n.op_type for n in model.graph.node)


def test_tensorrt_resnet_has_no_int32_constants_and_conforms(resnet: str, tmp_path: Path) -> None:
    model = _quantized(resnet, tmp_path / "q.onnx", TRT, (1, 3, 64, 64))
    inits = {t.name: t.data_type for t in model.graph.initializer}
    dequantized = {
        inits[n.input[0]] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
    }
    assert dequantized == {TensorProto.INT8}, "no INT32 bias behind DequantizeLinear"
    assert conformance.check(model) == []


def test_tensorrt_resnet_places_qdq_as_tensorrt_recommends(resnet: str, tmp_path: Path) -> None:
    """No Q/DQ between a Conv and its ReLU; each residual Add reads its fused Conv in float and its
    shortcut through Q/DQ (TensorRT developer guide, Q/DQ layer-placement recommendations)."""
    model = _quantized(resnet, tmp_path / "q.onnx", TRT, (1, 3, 64, 64))
    producer = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        if node.op_type == "Relu" and producer[node.input[0]].op_type != "Add":
            assert producer[node.input[0]].op_type == "Conv"
        if node.op_type == "Add":
            kinds = sorted(producer[x].op_type for x in node.input)
            assert kinds == ["Conv", "DequantizeLinear"], (node.name, kinds)
    assert _ops(model)["QuantizeLinear"] == 21  # 20 Conv inputs and the Gemm's, shared where a tensor feeds two


def test_onnxruntime_default_quantization_fails_naming_the_rule(resnet: str, tmp_path: Path) -> None:
    from onnxruntime import quantization as q

    out = str(tmp_path / "ort-default.onnx")
    q.quantize_static(resnet, out, make_reader("input", _random_batches((1, 3, 64, 64))))
    found = conformance.check(onnx.load(out))
    rules = {v.rule for v in found}
    assert conformance.INT8_ONLY in rules and conformance.ZERO_POINT in rules
    bias = [v for v in found if v.rule == conformance.INT8_ONLY and v.tensor.startswith("conv_1.b")]
    assert bias and "INT32" in bias[0].detail
    with pytest.raises(InputError, match=r"\[int8-only\] node 'conv_1.b_DequantizeLinear'"):
        conformance.require_file(out)


def test_onnxruntime_target_has_no_more_qdq_than_onnxruntime_defaults(resnet: str, tmp_path: Path) -> None:
    """Defect 10: the CPU model kept a Q/DQ pair on each of 17 ReLUs (39 QuantizeLinear vs 33)."""
    from onnxruntime import quantization as q

    ours = _quantized(resnet, tmp_path / "ours.onnx", ORT, (1, 3, 64, 64))
    theirs = str(tmp_path / "theirs.onnx")
    q.quantize_static(resnet, theirs, make_reader("input", _random_batches((1, 3, 64, 64))))
    assert _ops(ours)["QuantizeLinear"] <= _ops(onnx.load(theirs))["QuantizeLinear"]
    producer = {o: n for n in ours.graph.node for o in n.output}
    assert not [
        n for n in ours.graph.node if n.op_type == "Relu" and producer[n.input[0]].op_type == "DequantizeLinear"
    ]


def test_tensorrt_onet_conforms(demo_dir: Path, tmp_path: Path) -> None:
    cfg = load_config(str(demo_dir / "demo.yaml"), [f"paths.state_dir={tmp_path / 'state'}"])
    model = prepare_model(Config.from_node(cfg).model)
    normalized = str(tmp_path / "onet.onnx")
    normalize_file(model.path, normalized)
    qdq = _quantized(normalized, tmp_path / "q.onnx", TRT, (4, 48, 48, 3), model.spec.name)
    assert conformance.check(qdq) == []


@pytest.mark.skipif(
    importlib.util.find_spec("rapidocr_onnxruntime") is None,
    reason="rapidocr-onnxruntime (requirements/fixtures.txt) is not installed: no PP-OCRv4 det model",
)
def test_tensorrt_ppocr_det_conforms(tmp_path: Path) -> None:
    normalized = str(tmp_path / "det.onnx")
    normalize_file(packaged.resolve("pkg:rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"), normalized)
    name = onnx.load(normalized, load_external_data=False).graph.input[0].name
    qdq = _quantized(normalized, tmp_path / "q.onnx", TRT, (1, 3, 64, 64), name)
    assert _ops(qdq)["QuantizeLinear"] > 0 and conformance.check(qdq) == []


def _one_conv(x_scale: np.ndarray, x_zero: np.ndarray, w_axis: int, w_scale_size: int, relu_qdq: bool):
    """x -> Q/DQ -> Conv(DQ(int8 w)) [-> Q/DQ] -> Relu, with the given quantization parameters."""
    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.int8), "w")
    inits = [
        w,
        numpy_helper.from_array(x_scale, "xs"),
        numpy_helper.from_array(x_zero, "xz"),
        numpy_helper.from_array(np.full(w_scale_size, 0.1, np.float32), "ws"),
        numpy_helper.from_array(np.zeros(w_scale_size, np.int8), "wz"),
        numpy_helper.from_array(np.array(0.1, np.float32), "ys"),
        numpy_helper.from_array(np.array(0, np.int8), "yz"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="qx"),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="dqx"),
        helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], name="dqw", axis=w_axis),
        helper.make_node("Conv", ["xd", "wd"], ["c"], name="conv"),
    ]
    relu_in = "c"
    if relu_qdq:
        nodes += [
            helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["cq"], name="qc"),
            helper.make_node("DequantizeLinear", ["cq", "ys", "yz"], ["cd"], name="dqc"),
        ]
        relu_in = "cd"
    nodes.append(helper.make_node("Relu", [relu_in], ["y"], name="relu"))
    graph = helper.make_graph(
        nodes,
        "one_conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


S, Z = np.array(0.1, np.float32), np.array(0, np.int8)


@pytest.mark.parametrize(
    "model, rule, node",
    [
        (_one_conv(S, np.array(3, np.int8), 0, 4, False), conformance.ZERO_POINT, "qx"),
        (_one_conv(S, np.array(0, np.uint8), 0, 4, False), conformance.INT8_ONLY, "qx"),
        (
            _one_conv(np.full(3, 0.1, np.float32), np.zeros(3, np.int8), 0, 4, False),
            conformance.PER_TENSOR_ACTIVATION,
            "qx",
        ),
        (_one_conv(S, Z, 1, 3, False), conformance.WEIGHT_AXIS, "dqw"),
        (_one_conv(np.array(-0.1, np.float32), Z, 0, 4, False), conformance.CONSTANT_SCALE, "qx"),
        (_one_conv(S, Z, 0, 4, True), conformance.RELU_FUSION, "qc"),
    ],
)
def test_each_rule_names_itself_and_the_node(model, rule: str, node: str) -> None:
    found = conformance.check(model)
    assert (rule, node) in {(v.rule, v.node) for v in found}, found


def test_a_conforming_hand_made_model_passes() -> None:
    assert conformance.check(_one_conv(S, Z, 0, 4, False)) == []
