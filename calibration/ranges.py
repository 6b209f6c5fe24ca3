"""Activation ranges of a QDQ model, of every tensor of the network, and how often real
activations leave them.

The ranges are read back from the QDQ model's QuantizeLinear scales and zero points, so the
calibration report and the TensorRT calibration cache carry the ranges the QDQ model uses. For
the cache, which is symmetric, amax = max(|range min|, |range max|); with symmetric INT8
activations (zero point 0) that is exactly scale * 127.

A TensorRT cache lists every tensor of the network (see tests/fixtures/trt_cache/), and TensorRT
runs a layer whose tensors have no scale in float ("Missing scale and zero-point for tensor").
``network_amax`` therefore gives every tensor a range: the QDQ model's where it has one, else
its input's for ops whose output values are a subset of their input's values, else the largest
|value| the FP32 model produced on the calibration frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

QINT8_MAX = 127.0


# Ops whose output values are a subset of their input's: the input's amax covers the output exactly.
# TensorRT's own calibrator gives them their input's scale too: MaxPool and (nearest) Resize outputs
# in tests/fixtures/trt_cache/deepstream-yolo-calib-trt8502-excerpt.table (TensorRT 8.5.2).
RANGE_PRESERVING = ("MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Resize")
FLOAT_TYPES = ("tensor(float)", "tensor(float16)", "tensor(double)")

RENAMED_OUTPUT_SUFFIX = "_QuantizeLinear_Input"  # the quantizer renames a quantized graph output X to X + this


def _float_name(name: str, graph_outputs: set) -> str:
    """The tensor's name in the float model (what TensorRT's implicit calibration calls it)."""
    if name.endswith(RENAMED_OUTPUT_SUFFIX) and name[: -len(RENAMED_OUTPUT_SUFFIX)] in graph_outputs:
        return name[: -len(RENAMED_OUTPUT_SUFFIX)]
    return name


def activation_ranges(qdq_model: Any) -> Dict[str, Tuple[float, float]]:
    """{float tensor name: (min, max) representable} for every per-tensor activation QuantizeLinear."""
    from onnx import numpy_helper

    inits = {t.name: t for t in qdq_model.graph.initializer}
    outputs = {o.name for o in qdq_model.graph.output}
    ranges: Dict[str, Tuple[float, float]] = {}
    for node in qdq_model.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in inits or node.input[1] not in inits:
            continue
        scale = numpy_helper.to_array(inits[node.input[1]])
        if scale.size != 1:
            continue  # per-channel activation scales have no TensorRT cache form; none are made here
        zero = (
            numpy_helper.to_array(inits[node.input[2]])
            if len(node.input) > 2 and node.input[2] in inits
            else np.zeros((), np.uint8)
        )
        low, high = (-QINT8_MAX, QINT8_MAX) if zero.dtype == np.int8 else (0.0, 255.0)
        step, offset = float(scale.reshape(())), float(zero.reshape(()))
        ranges[_float_name(node.input[0], outputs)] = ((low - offset) * step, (high - offset) * step)
    return ranges


def symmetric_amax(ranges: Mapping[str, Tuple[float, float]]) -> Dict[str, float]:
    """{tensor: amax} for a symmetric INT8 calibration cache."""
    return {name: max(abs(lo), abs(hi)) for name, (lo, hi) in ranges.items()}


def activation_amax(qdq_model: Any) -> Dict[str, float]:
    return symmetric_amax(activation_ranges(qdq_model))


@dataclass
class NetworkRanges:
    amax: Dict[str, float]  # every float tensor of the network -> symmetric amax
    source: Dict[str, str]  # tensor -> "qdq" | "propagated" | "observed"


def _graph_inputs(model: Any) -> List[str]:
    initializers = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in initializers]


def _producers(model: Any) -> List[Tuple[Any, str]]:
    """(node, output name) for every named output of a non-Constant node, in graph order."""
    return [(n, o) for n in model.graph.node if n.op_type != "Constant" for o in n.output if o]


def network_tensors(model: Any) -> List[str]:
    """The tensors TensorRT's ONNX parser names in the network: the graph inputs and every node
    output, under their ONNX names (onnx-tensorrt 8.6-GA: importInputs calls addInput(input.name()),
    and each node output is registered with ImporterContext::registerTensor(output, outputName),
    which calls setName; ModelImporter.cpp and ImporterContext.cpp). Constant nodes give weights,
    not tensors."""
    return _graph_inputs(model) + [name for _, name in _producers(model)]


def _preserves_range(node: Any) -> bool:
    if node.op_type != "Resize":
        return node.op_type in RANGE_PRESERVING
    mode = next((a.s for a in node.attribute if a.name == "mode"), b"nearest")
    return mode == b"nearest"  # linear and cubic interpolate: cubic can leave the input's range


def observed_amax(
    model_path: str, input_name: str, batches: Sequence[np.ndarray], names: Sequence[str]
) -> Dict[str, float]:
    """max |value| of each float tensor in ``names`` over ``batches``, from the FP32 model with those
    tensors exposed as extra outputs (one batch at a time); non-float tensors are left out."""
    wanted = set(names)
    session = _exposing_session(model_path, names)
    exposed = [o.name for o in session.get_outputs() if o.name in wanted and o.type in FLOAT_TYPES]
    amax: Dict[str, float] = {}
    for batch in batches:
        values = dict(zip(exposed, session.run(exposed, {input_name: batch})))
        if input_name in wanted:
            values[input_name] = batch
        for name, value in values.items():
            if value.size:
                amax[name] = max(amax.get(name, 0.0), float(np.abs(value).max()))
    return amax


def network_amax(
    model_path: str, input_name: str, batches: Sequence[np.ndarray], quantized: Mapping[str, float]
) -> NetworkRanges:
    """A symmetric amax for every float tensor of the FP32 model (see the module docstring);
    ``quantized``: the QDQ model's amax per float tensor name (activation_amax)."""
    import onnx

    model = onnx.load(model_path, load_external_data=False)
    names = network_tensors(model)
    observed = observed_amax(model_path, input_name, batches, [n for n in names if n not in quantized])
    ranges = NetworkRanges({}, {})
    tensors: List[Tuple[Any, str]] = [(None, name) for name in _graph_inputs(model)]
    for node, name in tensors + _producers(model):
        if name in quantized:
            ranges.amax[name], ranges.source[name] = quantized[name], "qdq"
        elif name not in observed:
            continue  # not a float tensor
        elif node is not None and _preserves_range(node) and node.input[0] in ranges.amax:
            ranges.amax[name], ranges.source[name] = ranges.amax[node.input[0]], "propagated"
        else:
            ranges.amax[name], ranges.source[name] = observed[name], "observed"
    return ranges


def _exposing_session(model_path: str, names: Sequence[str]) -> Any:
    """An ONNX Runtime session of the float model with ``names`` added as outputs."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(model_path)
    present = {o.name for o in model.graph.output} | {i.name for i in model.graph.input}
    for name in names:
        if name not in present:
            model.graph.output.append(onnx.ValueInfoProto(name=name))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])


def activation_bytes(model_path: str, input_name: str, batch: np.ndarray) -> int:
    """Bytes of all node outputs for one batch: what a calibrator holds per batch it keeps."""
    import onnx

    model = onnx.load(model_path, load_external_data=False)
    names = [o for n in model.graph.node for o in n.output if o]
    session = _exposing_session(model_path, names)
    wanted = [o.name for o in session.get_outputs()]
    return int(sum(v.nbytes for v in session.run(wanted, {input_name: batch}) if isinstance(v, np.ndarray)))


def tensor_statistics(
    model_path: str, input_name: str, batches: Sequence[np.ndarray], ranges: Mapping[str, Tuple[float, float]]
) -> Dict[str, Dict[str, Any]]:
    """Observed min/max and the saturation fraction (values outside the quantized range) of each
    tensor over ``batches``, from the FP32 model with those tensors exposed as extra outputs."""
    session = _exposing_session(model_path, list(ranges))
    graph_inputs = {i.name for i in session.get_inputs()}
    names = [n for n in ranges if n not in graph_inputs]
    stats = {n: {"min": float("inf"), "max": float("-inf"), "saturated": 0, "count": 0} for n in ranges}
    for batch in batches:
        values = dict(zip(names, session.run(names, {input_name: batch})))
        values.update({n: batch for n in ranges if n in graph_inputs})
        for name, value in values.items():
            entry = stats[name]
            entry["min"] = min(entry["min"], float(value.min()))
            entry["max"] = max(entry["max"], float(value.max()))
            low, high = ranges[name]
            entry["saturated"] += int(np.count_nonzero((value < low) | (value > high)))
            entry["count"] += int(value.size)
    return {
        name: {
            "range": [ranges[name][0], ranges[name][1]],
            "amax": symmetric_amax({name: ranges[name]})[name],
            "observed_min": s["min"],
            "observed_max": s["max"],
            "saturation": s["saturated"] / s["count"] if s["count"] else 0.0,
        }
        for name, s in stats.items()
    }
