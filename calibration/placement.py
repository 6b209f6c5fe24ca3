"""Q/DQ placement for TensorRT after ONNX Runtime's quantizer: residual Adds keep Q/DQ on the
residual input only.

TensorRT developer guide, "Q/DQ Layer-Placement Recommendations" (docs.nvidia.com/deeplearning/
tensorrt/latest/inference-library/work-quantized-types.html): quantize the residual input of a skip
connection so TensorRT fuses the Add into the weighted layer before it; NVIDIA's ResNet examples do
the same (NVIDIA/TensorRT v10.3.0 tools/pytorch-quantization/examples/torchvision/models/
classification/resnet.py, ``residual_quantizer``; tools/tensorflow-quantization/docs/source/docs/
add_custom_qdq_cases.md: "add Q/DQ nodes in the residual connection only (not between Add and Conv)").
ONNX Runtime quantizes every input of an Add it quantizes, so the Q/DQ pair on the branch that a
weighted op writes is removed here.
"""

from __future__ import annotations

from typing import Any, Dict, List

from calibration.qdq_graph import WEIGHTED_OPS, GraphIndex, index


def residual_adds(model: Any) -> List[str]:
    """Names of the Adds that join a weighted op's output with another computed tensor."""
    idx = index(model.graph)
    found = []
    for node in model.graph.node:
        if node.op_type != "Add" or len(node.input) != 2 or any(x in idx.constants for x in node.input):
            continue
        producers = [idx.producer.get(_through_qdq(x, idx)) for x in node.input]
        if any(p is not None and p.op_type in WEIGHTED_OPS for p in producers):
            found.append(node.name)
    return found


def _through_qdq(name: str, idx: GraphIndex) -> str:
    """The float tensor behind a DequantizeLinear(QuantizeLinear(x)) pair, else ``name``."""
    dq = idx.producer.get(name)
    q = idx.producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
    return str(q.input[0]) if q is not None and q.op_type == "QuantizeLinear" else name


def _depths(model: Any) -> Dict[str, int]:
    """Longest path (in nodes) from the graph inputs to each tensor; the graph is in topological order."""
    depth: Dict[str, int] = {}
    for node in model.graph.node:
        level = 1 + max((depth.get(x, 0) for x in node.input), default=0)
        for name in node.output:
            depth[name] = level
    return depth


def _fused_branch(node: Any, idx: GraphIndex, depth: Dict[str, int]) -> int:
    """Which input of a residual Add TensorRT fuses with its weighted producer: the one a weighted op
    writes (through ONNX Runtime's Q/DQ), the deeper one when both are (the other is the shortcut)."""
    sources = []
    for position, name in enumerate(node.input):
        source = _through_qdq(name, idx)
        producer = idx.producer.get(source)
        if producer is not None and producer.op_type in WEIGHTED_OPS:
            sources.append((depth.get(source, 0), position))
    return max(sources)[1] if sources else -1


def unquantize_fused_branches(model: Any, adds: List[str]) -> int:
    """Rewire each of ``adds`` to read its fused branch in float, drop Q/DQ nodes left unused;
    returns how many Add inputs changed. Edits ``model`` in place."""
    idx, depth = index(model.graph), _depths(model)
    changed = 0
    for node in model.graph.node:
        if node.name not in adds:
            continue
        position = _fused_branch(node, idx, depth)
        source = _through_qdq(node.input[position], idx) if position >= 0 else ""
        if source and source != node.input[position]:
            node.input[position] = source
            changed += 1
    _drop_unused(model, ("DequantizeLinear", "QuantizeLinear"))
    return changed


def _drop_unused(model: Any, op_types: tuple) -> None:
    """Remove nodes of ``op_types`` whose outputs nothing reads (DQ first, then the Q before it)."""
    for op_type in op_types:
        read = {x for n in model.graph.node for x in n.input} | {o.name for o in model.graph.output}
        keep = [n for n in model.graph.node if n.op_type != op_type or any(o in read for o in n.output)]
        del model.graph.node[:]
        model.graph.node.extend(keep)
