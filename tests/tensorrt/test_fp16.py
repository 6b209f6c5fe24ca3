"""FP16 conversion of ONNX models (TensorRT 11's route to FP16), checked with ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from agent.backends.tensorrt.fp16 import convert_model, convert_to_fp16
from agent.util.errors import InputError


def test_onet_in_fp16_keeps_fp32_io_and_its_answers(onet_path: str, tmp_path: Path) -> None:
    out = str(tmp_path / "onet16.onnx")
    counts = convert_to_fp16(onet_path, out)
    model = onnx.load(out)
    assert counts["converted_tensors"] > 0 and counts["clipped_values"] == 0 and counts["edge_casts"] == 4
    assert all(i.data_type != onnx.TensorProto.FLOAT for i in model.graph.initializer)
    assert {v.type.tensor_type.elem_type for v in list(model.graph.input) + list(model.graph.output)} == {
        onnx.TensorProto.FLOAT
    }
    x = np.random.default_rng(0).standard_normal((8, 48, 48, 3)).astype(np.float32)
    ref = ort.InferenceSession(onet_path, providers=["CPUExecutionProvider"]).run(None, {"input_3": x})
    got = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(None, {"input_3": x})
    for a, b in zip(ref, got):
        assert b.dtype == np.float32
        np.testing.assert_allclose(b, a, atol=5e-3)
    assert (np.argmax(ref[-1], 1) == np.argmax(got[-1], 1)).all()


def test_out_of_range_weights_are_clipped_and_counted() -> None:
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.array([1.0, 1e6, -1e6], np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    assert convert_model(model)["clipped_values"] == 2
    assert numpy_helper.to_array(model.graph.initializer[0]).tolist() == [1.0, 65504.0, -65504.0]


def test_qdq_and_garbage_are_refused(qdq_path: str, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="has Q/DQ nodes"):
        convert_to_fp16(qdq_path, str(tmp_path / "x.onnx"))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(InputError, match="not a readable ONNX model"):
        convert_to_fp16(str(bad), str(tmp_path / "y.onnx"))


def test_operator_that_needs_fp32_is_refused_with_the_reason(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    graph = helper.make_graph(
        [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8, 8])],
        [scales],
    )
    src = tmp_path / "resize.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(src))
    with pytest.raises(InputError, match="does not accept FP16.*scales"):
        convert_to_fp16(str(src), str(tmp_path / "out.onnx"))
