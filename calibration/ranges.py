"""Activation ranges of a QDQ model and how often real activations leave them.

The ranges are read back from the QDQ model's QuantizeLinear scales and zero points, so the
calibration report and the TensorRT calibration cache carry the ranges the QDQ model uses. For
the cache, which is symmetric, amax = max(|range min|, |range max|); with symmetric INT8
activations (zero point 0) that is exactly scale * 127.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Sequence, Tuple

import numpy as np

QINT8_MAX = 127.0


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
