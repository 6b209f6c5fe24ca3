"""ONNX Runtime backend: FP32 and QDQ-INT8 ONNX models on the CPU (or any ORT provider).

"Building" runs ONNX Runtime's graph optimizer once and saves the optimized model, so loading
later skips that work; the file is tied to the ONNX Runtime version and CPU, like a TensorRT
engine is tied to its release and GPU.
"""

from __future__ import annotations

import platform
from typing import Any, Dict, Mapping

import numpy as np

from agent.backends.base import Arrays, Backend, BuildOutput, BuildRequest, Engine, TensorInfo
from agent.util.device import cpu_identity
from agent.util.errors import EdgeAgentError, InputError, MissingDependency

_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependency("onnxruntime is not installed: pip install onnxruntime") from None
    return onnxruntime


def session_options(options: Mapping[str, Any], optimized_path: str = "") -> Any:
    ort = _ort()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(options.get("intra_op_threads", 0))
    opts.inter_op_num_threads = int(options.get("inter_op_threads", 0))
    opts.graph_optimization_level = getattr(
        ort.GraphOptimizationLevel, _LEVELS[options.get("graph_optimization", "all")]
    )
    opts.log_severity_level = 3
    if optimized_path:
        opts.optimized_model_filepath = optimized_path
    return opts


def open_session(model_path: str, options: Mapping[str, Any], optimized_path: str = "") -> Any:
    """An InferenceSession, with ORT's own error turned into one naming the file."""
    ort = _ort()
    providers = list(options.get("providers") or ["CPUExecutionProvider"])
    missing = [p for p in providers if p not in ort.get_available_providers()]
    if missing:
        raise InputError(
            f"backend.onnxruntime.providers: {missing} not available; this build has {ort.get_available_providers()}"
        )
    try:
        return ort.InferenceSession(
            model_path, sess_options=session_options(options, optimized_path), providers=providers
        )
    except Exception as exc:  # ORT raises its own exception types (Fail, InvalidGraph, ...)
        raise InputError(f"onnxruntime cannot load {model_path}: {exc}") from None


class OnnxRuntimeEngine(Engine):
    def __init__(self, session: Any, info: Dict[str, Any]) -> None:
        self.session = session
        self.info = info
        self.inputs = [self._tensor(t) for t in session.get_inputs()]
        self.outputs = [self._tensor(t) for t in session.get_outputs()]
        self._output_names = [t.name for t in self.outputs]

    @staticmethod
    def _tensor(arg: Any) -> TensorInfo:
        shape = tuple(d if isinstance(d, int) and d > 0 else None for d in arg.shape)
        return TensorInfo(arg.name, shape, _ORT_TYPES.get(arg.type, arg.type))

    def infer(self, feeds: Mapping[str, np.ndarray]) -> Arrays:
        try:
            values = self.session.run(self._output_names, dict(feeds))
        except Exception as exc:
            raise EdgeAgentError(f"onnxruntime inference failed: {exc}") from None
        return dict(zip(self._output_names, values))

    def close(self) -> None:
        self.session = None


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    engine_suffix = ".onnx"
    precisions = ("fp32", "int8")

    def version(self) -> str:
        return str(_ort().__version__)

    def device_identity(self) -> Dict[str, Any]:

        return {"cpu": cpu_identity(), "machine": platform.machine()}

    def build(self, request: BuildRequest, engine_path: str) -> BuildOutput:
        if request.precision not in self.precisions:
            raise InputError(
                f"precision {request.precision}: the onnxruntime backend builds {', '.join(self.precisions)} "
                "(CPUs have no fast FP16 path)"
            )
        session = open_session(request.model_path, request.options, optimized_path=engine_path)
        declared = {t.name: t.shape for t in OnnxRuntimeEngine(session, {}).inputs}
        for name, shape in request.input_shapes.items():
            if name not in declared:
                raise InputError(f"model has no input {name!r}")
            fixed = [(d, s) for d, s in zip(declared[name], shape) if d is not None and d != s]
            if len(declared[name]) != len(shape) or fixed:
                raise InputError(f"input {name!r}: model declares {list(declared[name])}, profile asks {list(shape)}")
        return BuildOutput(
            precision=request.precision,
            details={"graph_optimization": request.options.get("graph_optimization", "all")},
        )

    def load(self, engine_path: str, options: Mapping[str, Any]) -> Engine:
        session = open_session(engine_path, options)
        info = {"backend": self.name, "backend_version": self.version(), "providers": session.get_providers()}
        return OnnxRuntimeEngine(session, info)
