"""Activation ranges of a QDQ model and how often real activations exceed them.

The ranges are read back from the QDQ model's QuantizeLinear scales (amax = scale * 127), so the
TensorRT calibration cache and the calibration report carry exactly the scales the QDQ model uses.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Sequence

import numpy as np

QINT8_MAX = 127.0


RENAMED_OUTPUT_SUFFIX = "_QuantizeLinear_Input"  # the quantizer renames a quantized graph output X to X + this


def _float_name(name: str, graph_outputs: set) -> str:
    """The tensor's name in the float model (what TensorRT's implicit calibration calls it)."""
    if name.endswith(RENAMED_OUTPUT_SUFFIX) and name[: -len(RENAMED_OUTPUT_SUFFIX)] in graph_outputs:
        return name[: -len(RENAMED_OUTPUT_SUFFIX)]
    return name


def activation_amax(qdq_model: Any) -> Dict[str, float]:
    """{float tensor name: amax} for every activation QuantizeLinear (weights are initializers)."""
    from onnx import numpy_helper

    inits = {t.name: t for t in qdq_model.graph.initializer}
    outputs = {o.name for o in qdq_model.graph.output}
    amax: Dict[str, float] = {}
    for node in qdq_model.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in inits:
            continue
        scale = numpy_helper.to_array(inits[node.input[1]]) if node.input[1] in inits else None
        if scale is None or scale.size != 1:
            continue  # per-channel activation scales have no TensorRT cache form; none are made here
        amax[_float_name(node.input[0], outputs)] = float(scale.reshape(())) * QINT8_MAX
    return amax


def tensor_statistics(model_path: str, input_name: str, batches: Sequence[np.ndarray], amax: Mapping[str, float]) -> Dict[str, Dict[str, Any]]:
    """Observed min/max and the saturation fraction (|x| > amax) of each tensor, over ``batches``,
    from the FP32 model with those tensors exposed as extra outputs."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(model_path)
    outputs = {o.name for o in model.graph.output}
    graph_inputs = {i.name for i in model.graph.input}
    for name in amax:
        if name not in outputs and name not in graph_inputs:
            model.graph.output.append(onnx.ValueInfoProto(name=name))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])
    names = [n for n in amax if n not in graph_inputs]
    stats = {n: {"min": float("inf"), "max": float("-inf"), "saturated": 0, "count": 0} for n in amax}
    for batch in batches:
        values = dict(zip(names, session.run(names, {input_name: batch})))
        values.update({n: batch for n in amax if n in graph_inputs})
        for name, value in values.items():
            entry = stats[name]
            entry["min"] = min(entry["min"], float(value.min()))
            entry["max"] = max(entry["max"], float(value.max()))
            entry["saturated"] += int(np.count_nonzero(np.abs(value) > amax[name]))
            entry["count"] += int(value.size)
    return {
        name: {
            "amax": amax[name],
            "observed_min": s["min"],
            "observed_max": s["max"],
            "saturation": s["saturated"] / s["count"] if s["count"] else 0.0,
        }
        for name, s in stats.items()
    }
