"""TensorRT's explicit-quantization rules, checked on a QDQ ONNX model before TensorRT sees it.

``check`` is a pure function over an onnx.ModelProto; each violation names its rule, the node and
the tensor. ``require`` raises an InputError listing them: it runs on every QDQ model calibration
makes for TensorRT, and on a QDQ model a user brings (NVIDIA ModelOpt, pytorch-quantization) before
a TensorRT build. The rules hold on every release the project supports (8.5 to 11): where a later
release allows more (FP8 and INT4 on 10.x), the 8.x rule stands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional

import numpy as np

from agent.util.errors import InputError
from calibration.qdq_graph import WEIGHTED_OPS, GraphIndex, attribute, index, label, output_channel_axis

# Rule names, each with its source.
# IDequantizeLayer "accepts a signed 8-bit integer input tensor" and "only supports DataType::kINT8"
# (NVIDIA/TensorRT include/NvInfer.h, tags 8.5.3 and v8.6.1; v10.3.0 adds kFP8 and kINT4). An INT32
# bias behind DequantizeLinear fails to parse: onnx/onnx-tensorrt#850, microsoft/onnxruntime#14229.
INT8_ONLY = "int8-only"
# IDequantizeLayer/IQuantizeLayer: "zeroPt must only contain zero-valued coefficients, because only
# symmetric quantization is supported" (NvInfer.h, 8.5.3 to v10.3.0); onnx/onnx-tensorrt
# docs/operators.md (commit 96e7811): "x_zero_point must be zero", "y_zero_point must be 0".
ZERO_POINT = "zero-point-zero"
# NvInfer.h (same tags): "The subgraph which terminates with the scale tensor must be a build-time
# constant", "All scale coefficients must have positive values".
CONSTANT_SCALE = "constant-positive-scale"
# onnx/onnx-tensorrt onnxOpImporters.cpp (commit 96e7811), QuantDequantLinearHelper: per-channel
# scales are taken as weight quantization with dimensions KCRS; "Activations-quantization does not
# support per-axis quantization".
PER_TENSOR_ACTIVATION = "per-tensor-activation-scale"
# Same importer: the per-channel axis indexes the weight's output channels (K of KCRS; the ONNX
# layouts give ConvTranspose's on axis 1, Gemm's on 0 or 1 by transB, MatMul's on the last).
WEIGHT_AXIS = "weight-per-channel-axis"
# TensorRT developer guide, "Working with Quantized Types", "Q/DQ Layer-Placement Recommendations"
# (docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/work-quantized-types.html): do not
# simulate ReLU fusion with Q/DQ; TensorRT fuses a weighted layer with its activation itself, and a
# Q/DQ pair between them splits the fusion and forces an INT8 round trip.
RELU_FUSION = "no-qdq-before-fused-relu"
RULES = (INT8_ONLY, ZERO_POINT, CONSTANT_SCALE, PER_TENSOR_ACTIVATION, WEIGHT_AXIS, RELU_FUSION)

_QDQ = ("QuantizeLinear", "DequantizeLinear")


@dataclass(frozen=True)
class Violation:
    rule: str
    node: str
    tensor: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.rule}] node {self.node!r}, tensor {self.tensor!r}: {self.detail}"


def _quantized_type(name: str, idx: GraphIndex) -> Optional[int]:
    """The ONNX element type of a quantized tensor: a constant's, or what its QuantizeLinear
    writes (its zero point's type, UINT8 when it has none: ONNX QuantizeLinear); None if unknown."""
    from onnx import TensorProto, helper

    if name in idx.constants:
        return int(helper.np_dtype_to_tensor_dtype(idx.constants[name].dtype))
    node = idx.producer.get(name)
    if node is None or node.op_type != "QuantizeLinear":
        return None
    if len(node.input) > 2 and node.input[2] in idx.constants:
        return int(helper.np_dtype_to_tensor_dtype(idx.constants[node.input[2]].dtype))
    return int(attribute(node, "output_dtype", 0) or TensorProto.UINT8)


def _type_name(elem_type: int) -> str:
    from onnx import TensorProto

    return str(TensorProto.DataType.Name(elem_type))


def _check_params(node: Any, idx: GraphIndex, out: List[Violation]) -> None:
    from onnx import TensorProto

    who = label(node)
    scale = idx.constants.get(node.input[1])
    if scale is None:
        out.append(Violation(CONSTANT_SCALE, who, node.input[1], "the scale is not a build-time constant"))
    elif not np.all(scale > 0):
        out.append(Violation(CONSTANT_SCALE, who, node.input[1], "a scale is zero or negative"))
    if len(node.input) > 2 and node.input[2]:
        zero = idx.constants.get(node.input[2])
        if zero is None:
            out.append(Violation(ZERO_POINT, who, node.input[2], "the zero point is not a build-time constant"))
        elif np.any(zero != 0):
            out.append(Violation(ZERO_POINT, who, node.input[2], "zero point is not 0 (asymmetric quantization)"))
    quantized = node.input[0] if node.op_type == "DequantizeLinear" else node.output[0]
    elem_type = _quantized_type(quantized, idx)
    if elem_type is not None and elem_type != TensorProto.INT8:
        out.append(Violation(INT8_ONLY, who, quantized, f"quantized type is {_type_name(elem_type)}, not INT8"))
    elif scale is not None and scale.size > 1:
        _check_per_channel(node, idx, out)


def _source(node: Any, idx: GraphIndex) -> str:
    """The float tensor a Q/DQ chain quantizes: a DequantizeLinear's Q input, else its own input."""
    x = node.input[0]
    producer = idx.producer.get(x)
    if node.op_type == "DequantizeLinear" and producer is not None and producer.op_type == "QuantizeLinear":
        return str(producer.input[0])
    return str(x)


def _check_per_channel(node: Any, idx: GraphIndex, out: List[Violation]) -> None:
    who, source = label(node), _source(node, idx)
    weight = idx.constants.get(source)
    if weight is None and node.op_type == "DequantizeLinear":
        weight = idx.constants.get(node.input[0])
    if weight is None:
        out.append(Violation(PER_TENSOR_ACTIVATION, who, node.input[0], "an activation has per-channel scales"))
        return
    if node.op_type == "QuantizeLinear":
        return  # the DequantizeLinear that follows is checked against the consumers
    axis = int(attribute(node, "axis", 1))
    axis = axis + weight.ndim if axis < 0 else axis
    for consumer in idx.consumers.get(node.output[0], []):
        if consumer.op_type not in WEIGHTED_OPS or list(consumer.input).index(node.output[0]) != 1:
            out.append(
                Violation(
                    WEIGHT_AXIS,
                    who,
                    node.input[0],
                    f"per-channel scales feed {consumer.op_type} {label(consumer)!r}, not a weight",
                )
            )
        elif axis != output_channel_axis(consumer, weight.ndim):
            expected = output_channel_axis(consumer, weight.ndim)
            out.append(
                Violation(
                    WEIGHT_AXIS,
                    who,
                    node.input[0],
                    f"axis {axis}; {consumer.op_type} {label(consumer)!r} has channels on axis {expected}",
                )
            )


def _check_relu_fusion(node: Any, idx: GraphIndex, out: List[Violation]) -> None:
    producer = idx.producer.get(node.input[0])
    if producer is None or producer.op_type not in WEIGHTED_OPS:
        return
    for dq in idx.consumers.get(node.output[0], []):
        for user in idx.consumers.get(dq.output[0], []) if dq.op_type == "DequantizeLinear" else []:
            if user.op_type == "Relu":
                out.append(
                    Violation(
                        RELU_FUSION,
                        label(node),
                        node.input[0],
                        f"a Q/DQ pair between {producer.op_type} {label(producer)!r} and Relu {label(user)!r}",
                    )
                )


def check(model: Any) -> List[Violation]:
    """Every violation of TensorRT's explicit-quantization rules in ``model`` (empty: conforms)."""
    idx = index(model.graph)
    found: List[Violation] = []
    for node in model.graph.node:
        if node.op_type in _QDQ and len(node.input) >= 2:
            _check_params(node, idx, found)
        if node.op_type == "QuantizeLinear":
            _check_relu_fusion(node, idx, found)
    return found


def require(model: Any, what: str, advice: str = "") -> None:
    """Raise an InputError naming every violation in ``model`` (``what`` says whose model it is,
    ``advice`` what to do about it)."""
    found = check(model)
    if found:
        lines = "\n".join(f"  {v}" for v in found)
        raise InputError(
            f"{what} breaks {len(found)} TensorRT explicit-quantization rule(s) (docs/calibration.md):\n{lines}"
            + (f"\n{advice}" if advice else "")
        )


USER_MODEL_ADVICE = (
    "Re-export it with INT8 symmetric quantization (zero points 0), per-tensor activation scales, per-channel "
    "weight scales on the output-channel axis and float (unquantized) biases, or give the FP32 model and let "
    "`edge-agent build --precision int8` calibrate it."
)


def require_file(path: str) -> None:
    """Check a user's QDQ model before a TensorRT build (see ``require``)."""
    import onnx

    require(onnx.load(path, load_external_data=False), f"model.path {path} (a QDQ model)", USER_MODEL_ADVICE)
