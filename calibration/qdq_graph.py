"""Read-only views of a QDQ ONNX graph shared by the conformance rules and the Q/DQ placement
pass: who produces and who consumes each tensor, the constant tensors, and the output-channel
axis of each weighted op's weight."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List

import numpy as np

# The ops whose weights are quantized and which TensorRT fuses with a following activation.
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass
class GraphIndex:
    producer: Dict[str, Any]  # tensor -> the NodeProto that writes it
    consumers: Dict[str, List[Any]]  # tensor -> the NodeProtos that read it
    constants: Dict[str, np.ndarray]  # initializers and Constant node outputs


def index(graph: Any) -> GraphIndex:
    from onnx import numpy_helper

    producer: Dict[str, Any] = {}
    consumers: Dict[str, List[Any]] = {}
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        for name in node.output:
            producer[name] = node
        for name in node.input:
            if name:
                consumers.setdefault(name, []).append(node)
        if node.op_type == "Constant":
            value = next((a.t for a in node.attribute if a.name == "value" and a.HasField("t")), None)
            if value is not None:
                constants[node.output[0]] = numpy_helper.to_array(value)
    return GraphIndex(producer, consumers, constants)


def attribute(node: Any, name: str, default: Any) -> Any:
    from onnx import helper

    found = next((a for a in node.attribute if a.name == name), None)
    return default if found is None else helper.get_attribute_value(found)


def output_channel_axis(node: Any, weight_rank: int) -> int:
    """The axis of ``node``'s weight (input 1) that indexes its output channels, in the ONNX
    layouts: Conv [K, C/g, ...] -> 0; ConvTranspose [C, K/g, ...] -> 1; Gemm B [K, N] -> 1, or 0
    with transB; MatMul B [..., K, N] -> the last."""
    if node.op_type == "Conv":
        return 0
    if node.op_type == "ConvTranspose":
        return 1
    if node.op_type == "Gemm":
        return 0 if attribute(node, "transB", 0) else 1
    return weight_rank - 1


def label(node: Any) -> str:
    """A node's name, or its op type and first output where the model left it unnamed."""
    return node.name or f"{node.op_type}->{node.output[0] if node.output else '?'}"
