"""TensorRT backend (Jetson, TensorRT 8.5 to 11): builds in an isolated child process, runs
through the CUDA buffer layer.

Importing this module without an importable ``tensorrt`` raises MissingDependency with how to
install it on JetPack, so ``edge-agent build --backend tensorrt`` exits 2 with one sentence.
Loading an engine built by another TensorRT release or for another device raises
:class:`~agent.util.errors.EngineIncompatible` (TensorRT's "magic tag" / "version tag"
failures): callers rebuild instead of crashing.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from typing import Any, Callable, Dict, List, Mapping, Optional

from agent.backends.base import Backend, BuildOutput, BuildRequest, Engine
from agent.backends.tensorrt.build_child import make_logger, run_isolated
from agent.backends.tensorrt.cuda import CudaLayer, open_cuda
from agent.backends.tensorrt.runtime import TensorRTEngine
from agent.util.device import l4t_release
from agent.util.errors import EngineIncompatible, InputError, MissingDependency
from agent.util.fileio import sha256_bytes

INSTALL_HINT = (
    "on JetPack install it with `sudo apt install python3-libnvinfer` "
    "(in a virtualenv, create the virtualenv with --system-site-packages)"
)


def require_tensorrt() -> Any:
    """The ``tensorrt`` module, or MissingDependency naming what to install."""
    try:
        return importlib.import_module("tensorrt")
    except (ImportError, OSError) as exc:
        raise MissingDependency(
            f"the tensorrt backend needs TensorRT's Python module, which is not importable ({exc}): {INSTALL_HINT}"
        ) from None


require_tensorrt()


def model_numerics(path: str) -> Dict[str, bool]:
    """Whether the ONNX model is quantized (Q/DQ nodes) or FP16-typed (FP16 initializers)."""
    import onnx

    try:
        graph = onnx.load(path, load_external_data=False).graph
    except Exception as exc:  # DecodeError, OSError, ...
        raise InputError(f"{path}: not a readable ONNX model ({exc})") from None
    return {
        "model_qdq": any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.node),
        "model_fp16": any(i.data_type == onnx.TensorProto.FLOAT16 for i in graph.initializer),
    }


def _qualified(factory: Callable[..., Any]) -> str:
    """``module:qualname`` of a CUDA layer factory, for the build child to open the same kind of layer."""
    return f"{factory.__module__}:{factory.__qualname__}"


class TensorRTBackend(Backend):
    name = "tensorrt"
    engine_suffix = ".engine"
    precisions = ("fp32", "fp16", "int8")

    def __init__(self, cuda_factory: Callable[[str], CudaLayer] = open_cuda) -> None:
        self._trt = require_tensorrt()
        self._cuda_factory = cuda_factory
        self._identity: Optional[Dict[str, Any]] = None

    def version(self) -> str:
        return str(self._trt.__version__)

    def device_identity(self) -> Dict[str, Any]:
        """TensorRT version, GPU name and compute capability, L4T release, DLA core count."""
        if self._identity is None:
            cuda = self._cuda_factory("auto")
            try:
                major, minor = cuda.compute_capability()
                gpu = cuda.device_name()
            finally:
                cuda.close()
            runtime = self._trt.Runtime(make_logger(self._trt, []))
            self._identity = {
                "tensorrt": self.version(),
                "gpu": gpu,
                "compute_capability": f"{major}.{minor}",
                "l4t": l4t_release(),
                "dla_cores": int(runtime.num_DLA_cores),
            }
        return dict(self._identity)

    def timing_cache_path(self, engine_path: str) -> str:
        """Beside the engine cache, keyed by what a timing cache is valid for: release and device."""
        identity = repr(sorted(self.device_identity().items())).encode()
        return os.path.join(
            os.path.dirname(os.path.abspath(engine_path)), "timing-cache", sha256_bytes(identity)[:32] + ".cache"
        )

    def build(self, request: BuildRequest, engine_path: str) -> BuildOutput:
        options = dict(request.options)
        job = {
            "model_path": os.path.abspath(request.model_path),
            "precision": request.precision,
            "input_shapes": {k: list(v) for k, v in request.input_shapes.items()},
            "options": options,
            "calibration": dataclasses.asdict(request.calibration) if request.calibration else None,
            "cuda": {"factory": _qualified(self._cuda_factory), "binding": str(options.get("cuda_binding", "auto"))},
            "engine_path": os.path.abspath(engine_path),
            "timing_cache_path": self.timing_cache_path(engine_path) if options.get("timing_cache", True) else None,
            **model_numerics(request.model_path),
        }
        timeout = float(request.timeout_s or options.get("build_timeout_s", 3600))
        result = run_isolated(job, timeout, options.get("build_memory_limit_mb"))
        return BuildOutput(
            precision=result["precision"], notes=result["notes"], log=result["log"], details=result["details"]
        )

    def load(self, engine_path: str, options: Mapping[str, Any]) -> Engine:
        trt = self._trt
        log: List[str] = []
        logger = make_logger(trt, log)
        # Before deserializing, as Polygraphy does (tools/Polygraphy/polygraphy/backend/trt/loader.py,
        # EngineFromBytes.call_impl: 8.5.2 l.552, v10.3.0 l.700): an engine holding plugin layers
        # deserializes only once this process has registered the plugin creators.
        trt.init_libnvinfer_plugins(logger, "")
        runtime = trt.Runtime(logger)
        if options.get("dla_core") is not None:
            runtime.DLA_core = int(options["dla_core"])
        with open(engine_path, "rb") as handle:
            data = handle.read()
        cuda = self._cuda_factory(str(options.get("cuda_binding", "auto")))
        try:
            with cuda.active():
                engine = runtime.deserialize_cuda_engine(data)
        except Exception as exc:  # some releases raise instead of returning None
            log.append(f"[ERROR] {exc}")
            engine = None
        if engine is None:
            cuda.close()
            errors = [line for line in log if "ERROR" in line] or ["no reason logged"]
            raise EngineIncompatible(f"TensorRT {self.version()} cannot load {engine_path}: {errors[-1]}; rebuild it")
        info = {"backend": self.name, "backend_version": self.version(), "cuda_binding": cuda.name}
        return TensorRTEngine(engine, cuda, info, cuda_graph=bool(options.get("cuda_graph", False)), trt=trt)
