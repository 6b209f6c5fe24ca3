"""FP16 conversion of an ONNX model for TensorRT 11, which takes precision from the model's types.

Float initializers, Constant tensors, Cast targets and intermediate value types become FP16; the
graph's inputs and outputs stay FP32 with a Cast at each edge, so callers feed and read FP32 as
before. Values outside FP16's range are clipped to +-65504 (a note says how many). A model whose
operators need FP32 somewhere (Resize scales, ConstantOfShape values, ...) fails ONNX's strict
type inference after conversion and is refused with the reason.
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from agent.util.errors import InputError

FP16_MAX = float(np.finfo(np.float16).max)


def _to_fp16(array: np.ndarray, clipped: List[int]) -> np.ndarray:
    clipped[0] += int(np.count_nonzero(np.abs(array[np.isfinite(array)]) > FP16_MAX))
    return np.clip(array, -FP16_MAX, FP16_MAX).astype(np.float16)


def convert_model(model: Any) -> Dict[str, Any]:
    """Convert ``model`` (onnx.ModelProto) in place; returns counts of what changed."""
    from onnx import TensorProto, helper, numpy_helper

    graph, clipped = model.graph, [0]
    converted = 0
    for index, init in enumerate(graph.initializer):
        if init.data_type == TensorProto.FLOAT:
            graph.initializer[index].CopyFrom(
                numpy_helper.from_array(_to_fp16(numpy_helper.to_array(init), clipped), init.name)
            )
            converted += 1
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Constant" and attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                attr.t.CopyFrom(numpy_helper.from_array(_to_fp16(numpy_helper.to_array(attr.t), clipped), attr.t.name))
                converted += 1
            elif node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
    for info in graph.value_info:
        if info.type.tensor_type.elem_type == TensorProto.FLOAT:
            info.type.tensor_type.elem_type = TensorProto.FLOAT16
    casts = []
    for value in graph.input:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            inner = f"{value.name}__fp16"
            for node in graph.node:
                node.input[:] = [inner if name == value.name else name for name in node.input]
            casts.append(
                helper.make_node("Cast", [value.name], [inner], to=TensorProto.FLOAT16, name=f"{value.name}__to_fp16")
            )
    for value in graph.output:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            inner = f"{value.name}__fp16"
            for node in graph.node:
                node.output[:] = [inner if name == value.name else name for name in node.output]
            casts.append(
                helper.make_node("Cast", [inner], [value.name], to=TensorProto.FLOAT, name=f"{value.name}__to_fp32")
            )
    nodes = (
        [n for n in casts if n.name.endswith("__to_fp16")]
        + list(graph.node)
        + [n for n in casts if n.name.endswith("__to_fp32")]
    )
    del graph.node[:]
    graph.node.extend(nodes)
    return {"converted_tensors": converted, "clipped_values": clipped[0], "edge_casts": len(casts)}


def convert_to_fp16(src: str, dst: str) -> Dict[str, Any]:
    """Write the FP16 version of the ONNX model ``src`` to ``dst``; InputError if it is not valid ONNX."""
    import onnx

    try:
        model = onnx.load(src)
    except Exception as exc:  # onnx raises DecodeError, OSError, ...
        raise InputError(f"{src}: not a readable ONNX model ({exc})") from None
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
        raise InputError(f"{src}: has Q/DQ nodes (an INT8 model); FP16 conversion takes the FP32 model")
    counts = convert_model(model)
    try:
        onnx.checker.check_model(model)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as exc:  # onnx's ValidationError, InferenceError
        raise InputError(f"{src}: an operator does not accept FP16 where the conversion put it ({exc})") from None
    onnx.save(model, dst)
    return counts
