"""INT8 calibration with ONNX Runtime's quantizer: minmax, entropy (KL) and percentile ranges,
written as a QDQ ONNX model with (per-channel) symmetric INT8 weights. Activations follow the
target: symmetric INT8 for TensorRT 8.5 to 11 (explicit quantization accepts nothing else), and
asymmetric UINT8 for ONNX Runtime on the CPU, whose fast kernels are U8S8 (measured on this
machine: a ResNet-18-shaped model runs about 3.5x faster than FP32 as U8S8, and barely faster
than FP32 as S8S8).

Q/DQ placement follows the target too. TensorRT (its rules: calibration.conformance, checked on
every model made for it): Q/DQ on the inputs of weighted ops and on the residual input of their
Adds, none on their outputs (TensorRT fuses the ReLU after them), biases left float. ONNX Runtime
on the CPU: Relu and Clip are quantized as well, so the quantizer folds each into the UINT8 range
before it (one Q/DQ pair, not two; ONNX Runtime's own defaults do the same) and the int32 biases
stay, which its QLinearConv fusion takes.

Only APIs present since onnxruntime 1.16 are used: ``quantize_static`` with a
``CalibrationDataReader``, ``nodes_to_exclude`` and the ``extra_options`` of that release
(``QuantizeBias`` and ``OpTypesToExcludeOutputQuantization`` read in qdq_quantizer.py of 1.16.3
and of 1.32).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from agent.util.errors import EdgeAgentError, MissingDependency
from calibration.conformance import require
from calibration.placement import residual_adds, unquantize_fused_branches

log = logging.getLogger(__name__)
# INT8 goes where the arithmetic is; element-wise ops between them stay float. Quantizing those too
# gained no speed on a ResNet-18-shaped model here, and quantizing PP-OCRv4 det's final Sigmoid
# collapsed its probability map to zero.
COMPUTE_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
# ONNX Runtime CPU: ReLU-like ops the quantizer folds into the asymmetric range of the Q before them
# (QDQRemovableActivation in onnxruntime's quantization/operators/activation.py, 1.16.3 and 1.32).
REMOVABLE_ACTIVATIONS = ("Relu", "Clip")
METHODS = ("minmax", "entropy", "percentile")


def _quantization() -> Any:
    try:
        from onnxruntime import quantization
    except ImportError:
        raise MissingDependency("INT8 calibration needs onnxruntime: pip install onnxruntime") from None
    return quantization


def make_reader(input_name: str, batches: Sequence[np.ndarray]) -> Any:
    """A CalibrationDataReader over preprocessed batches. It has the ``__len__`` and ``set_range``
    of ORT's strided calibration, used for minmax (one batch's activations in memory at a time).
    The histogram calibrators are not strided: merging histograms batch by batch keeps the first
    batch's bin width, and a tensor whose range later grows a thousandfold needs millions of bins
    (measured: PP-OCRv4 det at 160x160 asked for 176 million). They get every batch at once, so
    their frames are capped by memory instead (``fit_to_memory``)."""
    base = _quantization().CalibrationDataReader

    class BatchReader(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            self.set_range(0, len(batches))

        def __len__(self) -> int:
            return len(batches)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._iter: Iterator[np.ndarray] = iter(batches[start_index:end_index])

        def get_next(self) -> Optional[Dict[str, np.ndarray]]:
            batch = next(self._iter, None)
            return None if batch is None else {input_name: batch}

        def rewind(self) -> None:
            self.set_range(0, len(batches))

    return BatchReader()


@dataclass(frozen=True)
class QuantizeSettings:
    """One quantization attempt: the calibrator and the nodes kept in float."""

    method: str
    per_channel: bool = True
    percentile: float = 99.999
    exclude: Tuple[str, ...] = ()
    only: Tuple[str, ...] = ()  # quantize just these nodes (per-layer sensitivity); empty = all
    symmetric_activations: bool = True  # INT8 with zero point 0 (TensorRT); False: UINT8 (ONNX Runtime CPU)

    def describe(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "method": self.method,
            "per_channel": self.per_channel,
            "excluded_nodes": list(self.exclude),
            "activations": "int8 symmetric" if self.symmetric_activations else "uint8 asymmetric",
        }
        if self.method == "percentile":
            out["percentile"] = self.percentile
        return out


def _extra_options(settings: QuantizeSettings) -> Dict[str, Any]:
    options: Dict[str, Any] = {"ActivationSymmetric": settings.symmetric_activations, "WeightSymmetric": True}
    if settings.symmetric_activations:  # TensorRT (module docstring)
        options["QuantizeBias"] = False  # an INT32 constant behind DequantizeLinear fails TensorRT's parser
        options["OpTypesToExcludeOutputQuantization"] = list(COMPUTE_OPS) + ["Add"]
    if settings.method == "minmax" and strided_minmax():
        options["CalibStridedMinMax"] = 1  # one batch at a time; ranges merge exactly
    if settings.method == "percentile":
        options["CalibPercentile"] = settings.percentile
    if settings.method in ("entropy", "percentile") and settings.symmetric_activations:
        options["CalibTensorRangeSymmetric"] = True
    return options


def quantize_qdq(
    normalized_model: str,
    output_path: str,
    input_name: str,
    batches: Sequence[np.ndarray],
    settings: QuantizeSettings,
) -> None:
    """Calibrate ``normalized_model`` on ``batches`` and write the QDQ model to ``output_path``."""
    q = _quantization()
    if settings.method not in METHODS:
        raise ValueError(f"calibration method {settings.method!r}: expected one of {', '.join(METHODS)}")
    op_types, exclude = _placement(normalized_model, settings)
    method = {
        "minmax": q.CalibrationMethod.MinMax,
        "entropy": q.CalibrationMethod.Entropy,
        "percentile": q.CalibrationMethod.Percentile,
    }
    # The quantizer writes its augmented model next to the working directory by default; keep it private.
    chatter = io.StringIO()  # the quantizer prints progress on stdout, which carries --json output
    with tempfile.TemporaryDirectory(prefix="edge-agent-quant-") as workdir, _quiet_quantizer(chatter):
        cwd = os.getcwd()
        os.chdir(workdir)
        try:
            q.quantize_static(
                normalized_model,
                output_path,
                make_reader(input_name, batches),
                quant_format=q.QuantFormat.QDQ,
                per_channel=settings.per_channel,
                activation_type=q.QuantType.QInt8 if settings.symmetric_activations else q.QuantType.QUInt8,
                weight_type=q.QuantType.QInt8,
                op_types_to_quantize=op_types,
                nodes_to_quantize=list(settings.only) or None,
                nodes_to_exclude=exclude,
                calibrate_method=method[settings.method],
                extra_options=_extra_options(settings),
            )
        except Exception as exc:  # the quantizer raises assorted ValueError/RuntimeError/ORT errors
            raise EdgeAgentError(f"INT8 quantization ({settings.method}) of {normalized_model} failed: {exc}") from None
        finally:
            os.chdir(cwd)
    log.debug("quantizer output: %s", chatter.getvalue().strip())
    if settings.symmetric_activations:
        _finish_for_tensorrt(output_path, exclude)


def _placement(normalized_model: str, settings: QuantizeSettings) -> Tuple[List[str], List[str]]:
    """The op types to quantize and the nodes to keep in float, for the settings' target."""
    exclude = list(settings.exclude)
    if not settings.symmetric_activations:
        return list(COMPUTE_OPS + REMOVABLE_ACTIVATIONS), exclude
    import onnx

    model = onnx.load(normalized_model, load_external_data=False)
    residual = set(residual_adds(model))
    exclude += [n.name for n in model.graph.node if n.op_type == "Add" and n.name not in residual]
    if settings.per_channel and not convtranspose_axis_ok():
        exclude += [n.name for n in model.graph.node if n.op_type == "ConvTranspose"]
        log.info("this onnxruntime quantizes ConvTranspose weights on axis 0; TensorRT needs axis 1: kept in float")
    return list(COMPUTE_OPS) + ["Add"], exclude


def _finish_for_tensorrt(output_path: str, exclude: List[str]) -> None:
    """Residual Adds keep Q/DQ on their shortcut only (calibration.placement); then the model must
    pass TensorRT's rules (calibration.conformance), else an InputError names each violation."""
    import onnx

    model = onnx.load(output_path)
    adds = [a for a in residual_adds(model) if a not in exclude]
    if unquantize_fused_branches(model, adds):
        onnx.save(model, output_path)
    require(model, "the QDQ model made for TensorRT")


class _DropAdvice(logging.Filter):
    """The quantizer logs advice to run its pre-processing on the root logger; normalization did."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


@contextlib.contextmanager
def _quiet_quantizer(sink: io.StringIO) -> Iterator[None]:
    root = logging.getLogger()
    advice = _DropAdvice()
    root.addFilter(advice)
    try:
        with contextlib.redirect_stdout(sink):
            yield
    finally:
        root.removeFilter(advice)


@functools.lru_cache(maxsize=1)
def strided_minmax() -> bool:
    """Whether this onnxruntime collects minmax ranges batch by batch (``CalibStridedMinMax``,
    absent from 1.16); without it every calibrator holds all batches' activations at once."""
    import inspect

    try:
        return "CalibStridedMinMax" in inspect.getsource(_quantization().quantize_static)
    except (OSError, TypeError):
        return False


@functools.lru_cache(maxsize=1)
def convtranspose_axis_ok() -> bool:
    """Whether this onnxruntime quantizes ConvTranspose weights per channel on their output-channel
    axis (1): 1.16.3's QDQConv passes axis 0 for Conv and ConvTranspose alike, 1.32's passes 1."""
    import inspect

    try:
        from onnxruntime.quantization.operators.conv import QDQConv

        return "quantize_weight_tensor_per_channel(node.input[1], 0)" not in inspect.getsource(QDQConv.quantize)
    except (ImportError, OSError, TypeError):
        return False


def needs_memory_cap(method: str) -> bool:
    """Whether ``method``'s calibration frames must fit in calibration.max_memory_mb."""
    return method != "minmax" or not strided_minmax()


def fit_to_memory(batches: Sequence[np.ndarray], batch_bytes: int, budget_bytes: int) -> List[np.ndarray]:
    """Evenly spaced batches whose activations (``batch_bytes`` each) fit in ``budget_bytes``."""
    keep = max(1, min(len(batches), budget_bytes // max(1, batch_bytes)))
    if keep >= len(batches):
        return list(batches)
    step = len(batches) / keep
    return [batches[int(i * step)] for i in range(keep)]


def symmetric_for(backend_name: str) -> bool:
    """Activation quantization that suits the backend (see the module docstring)."""
    return backend_name != "onnxruntime"


def quantizable_nodes(model: Any, op_types: Sequence[str] = COMPUTE_OPS) -> List[str]:
    """Names of the compute nodes whose weights INT8 quantizes: the candidates for mixed precision."""
    return [n.name for n in model.graph.node if n.op_type in op_types]
