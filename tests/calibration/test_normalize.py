"""Normalization of the real models that need it, and refusals that say why."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from agent.util import packaged
from agent.util.errors import InputError
from calibration.normalize import default_opset, normalize_file, normalize_model

PPOCR_DET = "pkg:rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"


def run(path: str, feed: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: feed})[0]


def test_onet_is_upgraded_to_opset_13_with_identical_outputs(onet_path: str, tmp_path: Path) -> None:
    target = tmp_path / "onet.onnx"
    report = normalize_file(onet_path, str(target))
    assert (report.source_opset, report.opset) == (12, 13)
    model = onnx.load(str(target))
    assert default_opset(model) == 13
    assert all(n.name for n in model.graph.node)
    feed = np.random.default_rng(0).uniform(-1, 1, (4, 48, 48, 3)).astype(np.float32)
    assert np.array_equal(run(onet_path, feed), run(str(target), feed))


def test_ppocr_det_constants_become_initializers(tmp_path: Path) -> None:
    source = packaged.resolve(PPOCR_DET)
    target = tmp_path / "det.onnx"
    report = normalize_file(source, str(target))
    assert report.constants_moved > 300 and report.opset == 13
    model = onnx.load(str(target))
    assert not [n for n in model.graph.node if n.op_type == "Constant"]
    feed = np.random.default_rng(1).uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)
    np.testing.assert_allclose(run(source, feed), run(str(target), feed), atol=1e-6)


def _tiny(op_domain: str = "", opset: int = 13) -> onnx.ModelProto:
    node = helper.make_node("Relu", ["x"], ["y"], domain=op_domain)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(op_domain, 1)] if op_domain else [])
    return helper.make_model(graph, opset_imports=imports)


def test_unnamed_nodes_get_unique_names() -> None:
    model = _tiny()
    report = normalize_model(model)
    assert report.nodes_named == 1 and model.graph.node[0].name == "Relu_0"


def test_custom_operators_are_refused_with_a_reason() -> None:
    with pytest.raises(InputError, match="custom domains.*com.example"):
        normalize_model(_tiny("com.example"), "custom.onnx")


def test_broken_graph_is_refused_with_a_reason() -> None:
    node = helper.make_node("Relu", ["nowhere"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    with pytest.raises(InputError, match="broken.onnx: cannot be prepared for INT8 quantization: .*nowhere"):
        normalize_model(model, "broken.onnx")


def test_model_without_default_opset_is_refused() -> None:
    model = _tiny()
    del model.opset_import[:]
    with pytest.raises(InputError, match="declares no opset"):
        normalize_model(model, "m.onnx")


def test_not_onnx_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "x.onnx"
    bogus.write_bytes(b"not a model")
    with pytest.raises(InputError, match="not a readable ONNX model"):
        normalize_file(str(bogus), str(tmp_path / "y.onnx"))
