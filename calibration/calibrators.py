"""INT8 calibration with ONNX Runtime's quantizer: minmax, entropy (KL) and percentile ranges,
written as a QDQ ONNX model with (per-channel) symmetric INT8 weights. Activations follow the
target: symmetric INT8 for TensorRT 8.5 to 11 (explicit quantization accepts nothing else), and
asymmetric UINT8 for ONNX Runtime on the CPU, whose fast kernels are U8S8 (measured on this
machine: a ResNet-18-shaped model runs about 3.5x faster than FP32 as U8S8, and barely faster
than FP32 as S8S8).

Only APIs present since onnxruntime 1.16 are used: ``quantize_static`` with a
``CalibrationDataReader``, ``nodes_to_exclude`` and the ``extra_options`` of that release.
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

log = logging.getLogger(__name__)
# INT8 goes where the arithmetic is; element-wise ops between them stay float. Quantizing those too
# gained no speed on a ResNet-18-shaped model here, and quantizing PP-OCRv4 det's final Sigmoid
# collapsed its probability map to zero.
COMPUTE_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
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
                op_types_to_quantize=list(COMPUTE_OPS),
                nodes_to_quantize=list(settings.only) or None,
                nodes_to_exclude=list(settings.exclude),
                calibrate_method=method[settings.method],
                extra_options=_extra_options(settings),
            )
        except Exception as exc:  # the quantizer raises assorted ValueError/RuntimeError/ORT errors
            raise EdgeAgentError(f"INT8 quantization ({settings.method}) of {normalized_model} failed: {exc}") from None
        finally:
            os.chdir(cwd)
    log.debug("quantizer output: %s", chatter.getvalue().strip())


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
