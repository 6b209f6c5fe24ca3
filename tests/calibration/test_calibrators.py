"""QDQ models from the real ONet with ONNX Runtime's quantizer, ranges read back, saturation."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import List

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from agent.config.load import load_config
from agent.config.sections import Config
from agent.model.pipeline import prepare_model
from agent.model.preprocess import make_batch
from calibration.calibrators import QuantizeSettings, quantizable_nodes, quantize_qdq
from calibration.normalize import normalize_file
from calibration.ranges import activation_amax, activation_ranges, tensor_statistics
from calibration.trt_cache import format_cache, parse_cache


@pytest.fixture(scope="module")
def onet(tmp_path_factory: pytest.TempPathFactory, demo_dir: Path):
    cfg = load_config(str(demo_dir / "demo.yaml"), [f"paths.state_dir={tmp_path_factory.mktemp('state')}"])
    model = prepare_model(Config.from_node(cfg).model)
    normalized = str(tmp_path_factory.mktemp("norm") / "onet.onnx")
    normalize_file(model.path, normalized)
    return model, normalized


def batches_of(images: List[np.ndarray], model, size: int = 20) -> List[np.ndarray]:
    spec = dataclasses.replace(model.spec, batch=size)
    return [make_batch(images[i : i + size], spec)[0] for i in range(0, len(images), size)]


def test_qdq_model_has_per_channel_int8_weights_and_runs(onet, lfw, tmp_path: Path) -> None:
    model, normalized = onet
    batches = batches_of(list(lfw[0][::2]), model)
    out = str(tmp_path / "q.onnx")
    quantize_qdq(normalized, out, model.spec.name, batches, QuantizeSettings("minmax"))
    qdq = onnx.load(out)
    dq = [n for n in qdq.graph.node if n.op_type == "DequantizeLinear"]
    inits = {t.name: t for t in qdq.graph.initializer}
    per_channel = [n for n in dq if n.input[0] in inits and len(inits[n.input[1]].dims) == 1]
    assert per_channel, "weights are quantized per output channel"
    weight_types = {inits[n.input[0]].data_type for n in dq if n.input[0] in inits}
    assert weight_types <= {onnx.TensorProto.INT8, onnx.TensorProto.INT32}  # INT32 only for biases
    assert any(inits[n.input[0]].data_type == onnx.TensorProto.INT8 for n in per_channel)
    session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    probs = session.run([model.output], {model.spec.name: batches[0]})[0]
    assert probs.shape == (20, 2) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-3)


def test_original_onet_cannot_be_quantized_per_channel_but_normalized_can(
    onet, onet_path: str, lfw, tmp_path: Path
) -> None:
    """The FIXTURES fact that motivates normalization: opset 12 has no per-channel DequantizeLinear."""
    model, normalized = onet
    batches = batches_of(list(lfw[0][:40]), model)
    broken = str(tmp_path / "orig-q.onnx")
    try:
        quantize_qdq(onet_path, broken, model.spec.name, batches, QuantizeSettings("minmax"))
        ort.InferenceSession(broken, providers=["CPUExecutionProvider"])
        loaded = True
    except Exception:
        loaded = False
    assert not loaded
    quantize_qdq(normalized, str(tmp_path / "norm-q.onnx"), model.spec.name, batches, QuantizeSettings("minmax"))
    ort.InferenceSession(str(tmp_path / "norm-q.onnx"), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
@pytest.mark.parametrize("symmetric", [True, False])
def test_each_method_gives_ranges_covering_the_data(onet, lfw, tmp_path: Path, method: str, symmetric: bool) -> None:
    model, normalized = onet
    batches = batches_of(list(lfw[0][::2]), model)
    out = str(tmp_path / f"{method}.onnx")
    quantize_qdq(normalized, out, model.spec.name, batches, QuantizeSettings(method, symmetric_activations=symmetric))
    qdq = onnx.load(out)
    zero_points = [onnx.numpy_helper.to_array(t) for t in qdq.graph.initializer if t.name.endswith("_zero_point")]
    activation_zero_points = [z for z in zero_points if z.size == 1 and z.dtype == (np.int8 if symmetric else np.uint8)]
    assert activation_zero_points
    if symmetric:
        assert not any(z.any() for z in activation_zero_points)
    ranges = activation_ranges(qdq)
    amax = activation_amax(qdq)
    normalized_model = onnx.load(normalized)
    graph_tensors = {o for n in normalized_model.graph.node for o in n.output} | {
        i.name for i in normalized_model.graph.input
    }
    assert set(ranges) <= graph_tensors, "cache names are the float model's tensor names"
    assert model.output not in ranges  # the softmax head stays float (COMPUTE_OPS)
    # a weighted op's output (MatMul dense_4): quantized for ONNX Runtime, left float for TensorRT's fusions
    assert ("dense_40" in ranges) != symmetric
    stats = tensor_statistics(normalized, model.spec.name, batches, ranges)
    for name, entry in stats.items():
        low, high = entry["range"]
        assert low <= 0.0 <= high and entry["amax"] == pytest.approx(max(-low, high))
        if method == "minmax":  # minmax covers every calibration value (up to one quantization step)
            step = (high - low) / 255.0
            assert low - step <= entry["observed_min"] and entry["observed_max"] <= high + step, name
    # the cache written from these ranges reads back to the same scales
    parsed = parse_cache(format_cache(amax, 8601))
    for name, value in amax.items():
        assert parsed.amax()[name] == pytest.approx(value, rel=1e-6)


def test_ranges_from_black_frames_saturate_on_real_faces(onet, lfw, tmp_path: Path) -> None:
    model, normalized = onet
    black = [np.zeros((96, 96, 3), np.uint8)] * 20
    out = str(tmp_path / "black.onnx")
    quantize_qdq(normalized, out, model.spec.name, batches_of(black, model), QuantizeSettings("minmax"))
    stats = tensor_statistics(
        normalized, model.spec.name, batches_of(list(lfw[0][:40]), model), activation_ranges(onnx.load(out))
    )
    assert max(e["saturation"] for e in stats.values()) > 0.05


def test_quantizable_nodes_of_onet(onet) -> None:
    nodes = quantizable_nodes(onnx.load(onet[1]))
    assert nodes[:4] == ["conv2d_8", "conv2d_9", "conv2d_10", "conv2d_11"] and len(nodes) == 8


def test_mixed_precision_keeps_excluded_nodes_in_float(onet, lfw, tmp_path: Path) -> None:
    model, normalized = onet
    out = str(tmp_path / "mixed.onnx")
    quantize_qdq(
        normalized,
        out,
        model.spec.name,
        batches_of(list(lfw[0][:40]), model),
        QuantizeSettings("minmax", exclude=("conv2d_9",)),
    )
    qdq = onnx.load(out)
    conv = next(n for n in qdq.graph.node if n.name == "conv2d_9")
    producers = {o: n.op_type for n in qdq.graph.node for o in n.output}
    assert producers.get(conv.input[1]) != "DequantizeLinear" and conv.input[1] == "conv2d_9/kernel:0"
    other = next(n for n in qdq.graph.node if n.name == "conv2d_10")
    assert producers.get(other.input[1]) == "DequantizeLinear"
