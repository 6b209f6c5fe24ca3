"""Read what an ONNX model declares (inputs, outputs, opset) and resolve the input spec from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from agent.backends.base import Dim, TensorInfo
from agent.config.sections import InputConfig, ModelConfig
from agent.util.errors import InputError

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


@dataclass(frozen=True)
class ModelInfo:
    path: str
    inputs: Tuple[TensorInfo, ...]
    outputs: Tuple[TensorInfo, ...]
    opset: int
    quantized: bool = False  # the graph has Q/DQ nodes: an explicitly quantized (QDQ) model


@dataclass(frozen=True)
class InputSpec:
    """Everything preprocessing needs, resolved from the config and the model."""

    name: str
    width: int
    height: int
    channels: int
    layout: str
    batch: int
    color: str
    resize: str
    scale: float
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    transpose_hw: bool
    dtype: str = "float32"
    letterbox_align: str = "center"
    pad_value: float = 114.0

    def tensor_shape(self, batch: Optional[int] = None) -> Tuple[int, ...]:
        n = batch or self.batch
        h, w = (self.width, self.height) if self.transpose_hw else (self.height, self.width)
        if self.layout == "NCHW":
            return (n, self.channels, h, w)
        return (n, h, w, self.channels)

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def read_model_info(path: str) -> ModelInfo:
    """Inspect an ONNX file without loading external weights; InputError if it is not ONNX."""
    import onnx
    from onnx import helper

    if not Path(path).is_file():
        raise InputError(f"model.path: model file not found: {path}")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends
        raise InputError(f"model.path: {path} is not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    graph = model.graph
    initializers = {init.name for init in graph.initializer}

    def tensors(values: Any) -> Tuple[TensorInfo, ...]:
        found = []
        for value in values:
            if value.name in initializers:
                continue
            ttype = value.type.tensor_type
            dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in ttype.shape.dim)
            dtype = helper.tensor_dtype_to_np_dtype(ttype.elem_type).name if ttype.elem_type else "float32"
            found.append(TensorInfo(value.name, dims, dtype))
        return tuple(found)

    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    inputs, outputs = tensors(graph.input), tensors(graph.output)
    if not inputs or not outputs:
        raise InputError(f"model.path: {path} declares no inputs or no outputs")
    return ModelInfo(path, inputs, outputs, opset, quantized=any(n.op_type in QDQ_OPS for n in graph.node))


def _layout_from_shape(shape: Tuple[Dim, ...]) -> Optional[str]:
    if len(shape) != 4:
        return None
    c_first, c_last = shape[1], shape[3]
    if c_first in (1, 3) and c_last not in (1, 3):
        return "NCHW"
    if c_last in (1, 3) and c_first not in (1, 3):
        return "NHWC"
    return None


def resolve_input_spec(cfg_input: InputConfig, info: ModelInfo) -> InputSpec:
    """Fill the config's null size, layout and batch from the model; refuse what is ambiguous."""
    names = [t.name for t in info.inputs]
    name = cfg_input.name or names[0]
    if name not in names:
        raise InputError(f"model.input.name: model has no input {name!r}; it has {names}")
    tensor = next(t for t in info.inputs if t.name == name)
    shape = tensor.shape
    if len(shape) != 4:
        raise InputError(f"model.input: input {name!r} has shape {list(shape)}; an image input needs 4 dimensions")
    layout = cfg_input.layout or _layout_from_shape(shape)
    if layout is None:
        raise InputError(f"model.input.layout: cannot tell NCHW from NHWC for input {name!r} {list(shape)}; set it")
    if layout == "NCHW":
        channels, dim_h, dim_w = shape[1], shape[2], shape[3]
    else:
        dim_h, dim_w, channels = shape[1], shape[2], shape[3]
    if cfg_input.transpose_hw:
        dim_h, dim_w = dim_w, dim_h
    if cfg_input.placeholder_shape:
        if cfg_input.size is None:
            raise InputError(
                f"model.input.size: input {name!r} {list(shape)} is declared a placeholder "
                "(model.input.placeholder_shape); set [width, height]"
            )
        shape = (None, *shape[1:]) if layout == "NCHW" else (None, None, None, shape[3])
        dim_h = dim_w = None
    if cfg_input.size is not None:
        width, height = cfg_input.size
    elif dim_h and dim_w:
        width, height = dim_w, dim_h
    else:
        raise InputError(
            f"model.input.size: input {name!r} {list(shape)} has a dynamic height or width; set [width, height]"
        )
    channels = channels or (1 if cfg_input.color == "GRAY" else 3)
    if (channels == 1) != (cfg_input.color == "GRAY"):
        raise InputError(f"model.input.color: {cfg_input.color} does not fit input {name!r} with {channels} channel(s)")
    batch = cfg_input.batch or shape[0] or 1
    if shape[0] and batch != shape[0]:
        raise InputError(f"model.input.batch: the model fixes batch {shape[0]}, got {batch}")
    declared = [d for d in ((dim_h, height), (dim_w, width)) if d[0] is not None and d[0] != d[1]]
    if declared:
        raise InputError(
            f"model.input.size: the model fixes {dim_w}x{dim_h} (w x h), got {width}x{height} (set "
            "model.input.placeholder_shape if the declared shape is a placeholder)"
        )
    mean = tuple(cfg_input.mean) * (channels if len(cfg_input.mean) == 1 else 1)
    std = tuple(cfg_input.std) * (channels if len(cfg_input.std) == 1 else 1)
    return InputSpec(
        name=name,
        width=int(width),
        height=int(height),
        channels=int(channels),
        layout=layout,
        batch=int(batch),
        color=cfg_input.color,
        resize=cfg_input.resize,
        scale=float(cfg_input.scale),
        mean=tuple(mean[:channels]),
        std=tuple(std[:channels]),
        transpose_hw=bool(cfg_input.transpose_hw),
        dtype=tensor.dtype,
        letterbox_align=cfg_input.letterbox_align,
        pad_value=float(cfg_input.pad_value),
    )


def load_labels(model_cfg: ModelConfig, count: int) -> List[str]:
    """Class names: model.labels, else model.labels_file, else class_0 ... class_{count-1}."""
    if model_cfg.labels:
        labels = list(model_cfg.labels)
        where = "model.labels"
    elif model_cfg.labels_file:
        try:
            lines = Path(model_cfg.labels_file).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise InputError(f"model.labels_file: cannot read {model_cfg.labels_file}: {exc.strerror}") from None
        labels = [line.strip() for line in lines if line.strip()]
        where = f"model.labels_file ({model_cfg.labels_file})"
    else:
        return [f"class_{i}" for i in range(count)]
    if count and len(labels) != count:
        raise InputError(f"{where}: {len(labels)} names for a model output of {count} classes")
    return labels
