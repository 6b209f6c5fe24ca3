"""Fixtures: the strict tensorrt double for each release, small real ONNX models."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

RELEASES = ("8.5.2", "8.6.1", "10.3.0", "10.13.3", "11.1")
DOUBLE_DIR = str(Path(__file__).parent / "double")


def use_double(monkeypatch: pytest.MonkeyPatch, release: str, **device: Any) -> Any:
    """Make `import tensorrt` (here and in build child processes) give the double of ``release``."""
    import os

    monkeypatch.setenv("EDGE_TRT_DOUBLE_RELEASE", release)
    monkeypatch.setenv("EDGE_TRT_DOUBLE_DEVICE", json.dumps(device))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([DOUBLE_DIR, os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(DOUBLE_DIR)
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    import tensorrt

    return tensorrt


@pytest.fixture(autouse=True)
def forget_the_double() -> Iterator[None]:
    """No test leaves the double importable as `tensorrt` (backend.name auto would pick it)."""
    yield
    module = sys.modules.get("tensorrt")
    if module is not None and str(getattr(module, "__file__", "")).startswith(DOUBLE_DIR):
        del sys.modules["tensorrt"]


@pytest.fixture(params=RELEASES)
def release(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def trt(release: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    return use_double(monkeypatch, release)


@pytest.fixture(scope="session")
def qdq_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small explicitly quantized model: x -> Q -> DQ -> MatMul(W) + b -> Relu, batch dynamic."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    inits = [
        numpy_helper.from_array(np.float32(0.02), "x_scale"),
        numpy_helper.from_array(np.int8(0), "x_zero"),
        numpy_helper.from_array(rng.standard_normal((16, 4)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xd"]),
        helper.make_node("MatMul", ["xd", "W"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["a"]),
        helper.make_node("Relu", ["a"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path_factory.mktemp("qdq") / "tiny_qdq.onnx"
    onnx.save(model, str(path))
    return str(path)
