"""A ResNet-18-shaped ONNX model with random (He-initialised) weights, built with onnx.helper.

Batch norm is folded into the convolutions (as exporters do for inference), so the graph is
Conv(+bias) / Relu / Add / MaxPool / GlobalAveragePool / Gemm, 1x3x224x224 -> 1x1000. Latency
does not depend on the weight values, which is all a speed benchmark needs.
"""

from __future__ import annotations

from typing import Any, List, Tuple

import numpy as np

STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: List[Any] = []
        self.inits: List[Any] = []
        self.count = 0

    def _name(self, kind: str) -> str:
        self.count += 1
        return f"{kind}_{self.count}"

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int, relu: bool = True) -> str:
        from onnx import helper, numpy_helper

        name = self._name("conv")
        w = (self.rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))).astype(np.float32)
        b = (self.rng.standard_normal(cout) * 0.01).astype(np.float32)
        self.inits += [numpy_helper.from_array(w, f"{name}.w"), numpy_helper.from_array(b, f"{name}.b")]
        pad = k // 2
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, f"{name}.w", f"{name}.b"],
                [name],
                name=name,
                kernel_shape=[k, k],
                strides=[stride, stride],
                pads=[pad] * 4,
            )
        )
        return self.relu(name) if relu else name

    def relu(self, x: str) -> str:
        from onnx import helper

        name = self._name("relu")
        self.nodes.append(helper.make_node("Relu", [x], [name], name=name))
        return name

    def block(self, x: str, cin: int, cout: int, stride: int) -> str:
        from onnx import helper

        y = self.conv(x, cin, cout, 3, stride)
        y = self.conv(y, cout, cout, 3, 1, relu=False)
        shortcut = self.conv(x, cin, cout, 1, stride, relu=False) if stride != 1 or cin != cout else x
        name = self._name("add")
        self.nodes.append(helper.make_node("Add", [y, shortcut], [name], name=name))
        return self.relu(name)


def resnet18(seed: int = 0, size: Tuple[int, int] = (224, 224), classes: int = 1000) -> Any:
    """The model as an onnx.ModelProto (opset 13), input 'input' [1,3,H,W], output 'logits' [1,classes]."""
    from onnx import TensorProto, helper, numpy_helper

    b = _Builder(seed)
    x = b.conv("input", 3, 64, 7, 2)
    pooled = b._name("maxpool")
    b.nodes.append(
        helper.make_node("MaxPool", [x], [pooled], name=pooled, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    )
    x, cin = pooled, 64
    for cout, stride in STAGES:
        x = b.block(x, cin, cout, stride)
        x = b.block(x, cout, cout, 1)
        cin = cout
    b.nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"))
    b.nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"))
    w = (b.rng.standard_normal((classes, 512)) * np.sqrt(1.0 / 512)).astype(np.float32)
    b.inits += [numpy_helper.from_array(w, "fc.w"), numpy_helper.from_array(np.zeros(classes, np.float32), "fc.b")]
    b.nodes.append(helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc", transB=1))
    graph = helper.make_graph(
        b.nodes,
        "resnet18_shaped",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size[1], size[0]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])],
        b.inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
