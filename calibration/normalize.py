"""Bring an ONNX model as found in the wild into a form the quantizer handles: every node named,
weights held in Constant nodes moved to initializers, the default domain at opset 13 or newer
(per-channel DequantizeLinear needs its ``axis`` attribute), shapes inferred. A model that cannot
be brought there is refused with one sentence saying why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List

from agent.util.errors import InputError
from agent.util.fileio import atomic_write_bytes

MIN_OPSET = 13
DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass
class Normalized:
    """What normalization changed, for the build report."""

    source_opset: int
    opset: int
    constants_moved: int
    nodes_named: int
    changes: List[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "source_opset": self.source_opset,
            "opset": self.opset,
            "constants_moved": self.constants_moved,
            "nodes_named": self.nodes_named,
            "changes": list(self.changes),
        }


def default_opset(model: Any) -> int:
    versions = [o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    return max(versions) if versions else 0


def constants_to_initializers(graph: Any) -> int:
    """Move tensor-valued Constant nodes of the main graph into initializers; return how many."""
    kept, moved = [], 0
    for node in graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            tensor = node.attribute[0].t
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
            moved += 1
        else:
            kept.append(node)
    if moved:
        del graph.node[:]
        graph.node.extend(kept)
    return moved


def name_nodes(graph: Any) -> int:
    """Give every unnamed node a unique name (mixed precision excludes nodes by name)."""
    taken = {n.name for n in graph.node if n.name}
    named = 0
    for index, node in enumerate(graph.node):
        if node.name:
            continue
        candidate = f"{node.op_type}_{index}"
        while candidate in taken:
            candidate += "_"
        node.name = candidate
        taken.add(candidate)
        named += 1
    return named


def _refusal(path: str, reason: str) -> InputError:
    return InputError(f"{path}: cannot be prepared for INT8 quantization: {reason}")


def normalize_model(model: Any, path: str = "model") -> Normalized:
    """Normalize ``model`` (an onnx.ModelProto) in place; raise InputError when it cannot be."""
    import onnx
    from onnx import shape_inference, version_converter

    foreign = sorted(
        {o.domain for o in model.opset_import if o.domain not in DEFAULT_DOMAINS and o.domain != "ai.onnx.ml"}
    )
    used = sorted({n.domain for n in model.graph.node if n.domain not in DEFAULT_DOMAINS})
    if used:
        raise _refusal(
            path,
            f"it uses operators of custom domains {used} that neither the quantizer nor TensorRT's ONNX parser know",
        )
    source_opset = default_opset(model)
    if source_opset == 0:
        raise _refusal(path, "it declares no opset of the default ONNX domain")
    report = Normalized(source_opset, source_opset, 0, 0)
    if foreign:
        report.changes.append(f"ignored unused opset imports {foreign}")
    report.constants_moved = constants_to_initializers(model.graph)
    if report.constants_moved:
        report.changes.append(f"moved {report.constants_moved} Constant node(s) to initializers")
    if source_opset < MIN_OPSET:
        try:
            converted = version_converter.convert_version(model, MIN_OPSET)
        except Exception as exc:  # the converter raises plain RuntimeErrors naming the operator
            raise _refusal(path, f"opset {source_opset} could not be converted to {MIN_OPSET} ({exc})") from None
        model.CopyFrom(converted)
        report.opset = MIN_OPSET
        report.changes.append(f"converted opset {source_opset} to {MIN_OPSET}")
    report.nodes_named = name_nodes(model.graph)
    if report.nodes_named:
        report.changes.append(f"named {report.nodes_named} unnamed node(s)")
    try:
        inferred = shape_inference.infer_shapes(model)
        onnx.checker.check_model(inferred)
    except Exception as exc:  # onnx raises ValidationError / InferenceError
        raise _refusal(path, f"the normalized graph is not valid ONNX ({str(exc).splitlines()[0]})") from None
    model.CopyFrom(inferred)
    return report


def normalize_file(source: str, target: str) -> Normalized:
    """Normalize the model at ``source`` and write it atomically to ``target``."""
    import onnx

    try:
        model = onnx.load(source)
    except Exception as exc:
        raise InputError(f"{source}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    report = normalize_model(model, source)
    atomic_write_bytes(target, model.SerializeToString())
    return report
