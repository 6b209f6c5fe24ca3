"""The TensorRT engine build, run in a child process (``python -m agent.backends.tensorrt.build_child JOB RESULT``).

The parent writes a JSON job, starts the child, and watches it: past ``build_timeout_s`` or
``build_memory_limit_mb`` (resident memory of the child and its children, via psutil) it is
killed. A crash (a signal), an out-of-memory kill or a timeout is a failed build with a reason;
the parent, the daemon and the engine it is serving keep running. The child writes a JSON result
(precision, notes, builder log, details) or the error it hit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np

from agent.backends.tensorrt.calibrator import make_calibrator
from agent.backends.tensorrt.compat import features, plan_build, platform_notes
from agent.backends.tensorrt.cuda import CudaLayer
from agent.backends.tensorrt.fp16 import convert_to_fp16
from agent.util.cancel import Cancelled, ambient
from agent.util.errors import EdgeAgentError, InputError
from agent.util.fileio import atomic_write_bytes, atomic_write_json, read_if_present
from agent.util.processes import wait_unless

MAX_LOG_LINES = 2000
CANCELLED = "cancelled"


class BuildFailed(EdgeAgentError):
    """The engine build failed; the message says why (builder errors, crash, timeout, memory)."""


# ----------------------------------------------------------------------------- child side
def make_logger(trt: Any, lines: List[str]) -> Any:
    class CapturingLogger(trt.ILogger):
        """Keeps the builder's messages (INFO and above) for the build report."""

        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: Any, msg: str) -> None:
            if severity.name != "VERBOSE":
                lines.append(f"[{severity.name}] {msg}")
                del lines[:-MAX_LOG_LINES]

    return CapturingLogger()


def _make_progress_monitor(trt: Any, lines: List[str]) -> Any:
    class ProgressLog(trt.IProgressMonitor):
        """Builder phases into the log (and the child's stderr, for a watcher)."""

        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: Optional[str], num_steps: int) -> None:
            lines.append(f"[PROGRESS] {phase_name}: start, {num_steps} steps")

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True

        def phase_finish(self, phase_name: str) -> None:
            lines.append(f"[PROGRESS] {phase_name}: done")

    return ProgressLog()


def _profile_shapes(declared: List[int], wanted: List[int]) -> List[List[int]]:
    """min/opt/max: the configured shape, with a dynamic batch accepting 1 up to the configured batch."""
    if len(declared) != len(wanted):
        raise InputError(f"profile shape {wanted} does not match the model's rank {len(declared)}")
    low = [1 if i == 0 and d == -1 else w for i, (d, w) in enumerate(zip(declared, wanted))]
    return [low, list(wanted), list(wanted)]


def _parse(trt: Any, builder: Any, logger: Any, flags: List[str], model_path: str, shown_path: str) -> Any:
    bits = 0
    for name in flags:
        bits |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(bits)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(model_path):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise InputError(f"TensorRT cannot parse {shown_path}: {'; '.join(errors) or 'no reason given'}")
    return network, parser


def _add_profile(
    builder: Any, network: Any, config: Any, input_shapes: Mapping[str, List[int]]
) -> Dict[str, List[List[int]]]:
    profile = builder.create_optimization_profile()
    profiles = {}
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        if tensor.name not in input_shapes:
            raise InputError(f"the build profile has no shape for model input {tensor.name!r}")
        profiles[tensor.name] = _profile_shapes([int(d) for d in tensor.shape], list(input_shapes[tensor.name]))
        profile.set_shape(tensor.name, *profiles[tensor.name])
    config.add_optimization_profile(profile)
    return profiles


def _use_dla(trt: Any, builder: Any, config: Any, core: int, gpu_fallback: bool) -> None:
    if core >= builder.num_DLA_cores:
        raise InputError(f"backend.tensorrt.dla_core {core}: this device has {builder.num_DLA_cores} DLA core(s)")
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = int(core)
    if gpu_fallback:
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)


def cuda_opener(spec: Mapping[str, Any]) -> Callable[[], CudaLayer]:
    """The CUDA layer the parent's backend uses (``module:name`` of its factory, and the binding)."""

    def open_layer() -> CudaLayer:
        import importlib

        module, _, name = str(spec["factory"]).partition(":")
        factory = importlib.import_module(module)
        for part in name.split("."):
            factory = getattr(factory, part)
        return factory(str(spec.get("binding", "auto")))  # type: ignore[operator]

    return open_layer


def node_layers(layer_name: str, nodes: Any) -> bool:
    """Whether a parsed layer comes from one of the ONNX ``nodes``. onnx-tensorrt names the first
    layer of a node after the node and further ones ``<node>_<counter>``
    (ImporterContext::registerLayer and generateUniqueName, onnx/onnx-tensorrt release/8.6-GA and
    10.1-GA, ImporterContext.hpp/.cpp)."""
    if layer_name in nodes:
        return True
    base, _, suffix = layer_name.rpartition("_")
    return suffix.isdigit() and base in nodes


def keep_float(trt: Any, network: Any, nodes: Any) -> List[str]:
    """Pin the layers of ``nodes`` to FP32 (mixed precision in implicit INT8); the names pinned.

    A layer precision is only a hint unless BuilderFlag.PREFER_ or OBEY_PRECISION_CONSTRAINTS is
    set (ILayer::setPrecision, NvInfer.h v8.6.1 l.637-659): the caller sets PREFER."""
    pinned = []
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        if node_layers(layer.name, nodes):
            layer.precision = trt.DataType.FLOAT
            for output in range(layer.num_outputs):
                layer.set_output_type(output, trt.DataType.FLOAT)
            pinned.append(layer.name)
    return pinned


def _calibration_profile(builder: Any, network: Any, shapes: Mapping[str, List[int]]) -> Any:
    """A profile of exactly ``shapes``: "Calibration optimization profile must be set if int8
    calibration is used to set scales for a network with runtime dimensions" (IBuilderConfig::
    setCalibrationProfile, NvInfer.h v8.6.1 l.9509-9518; MIN and MAX are overwritten by OPT)."""
    profile = builder.create_optimization_profile()
    for index in range(network.num_inputs):
        name = network.get_input(index).name
        profile.set_shape(name, shapes[name], shapes[name], shapes[name])
    return profile


def _build_calibrated(
    trt: Any, builder: Any, network: Any, config: Any, spec: Mapping[str, Any], job: Mapping[str, Any], log: List[str]
) -> Tuple[Any, Dict[str, Any], List[str]]:
    """Build with TensorRT's calibrator over the job's frames (or a cache replay), falling back to
    the job's fallback cache when calibration fails; (serialized engine or None, details, notes)."""
    frames = np.load(spec["frames_path"], mmap_mode="r") if spec.get("frames_path") else None
    fallback = (spec.get("fallback_cache") or "").encode()
    source = spec.get("fallback_source") or "the fallback cache"
    opener = cuda_opener(job["cuda"])
    notes: List[str] = []
    shapes = {n: list(s) for n, s in job["input_shapes"].items()}
    if frames is not None:
        (name,) = shapes  # the calibration frames feed a single-input model
        shapes[name] = [int(d) for d in frames.shape[1:]]
        rank = len(network.get_input(0).shape)
        if len(shapes[name]) != rank:
            raise InputError(
                f"calibration frames of shape {tuple(shapes[name])} cannot feed model input {name!r} of rank {rank}"
            )
    config.set_calibration_profile(_calibration_profile(builder, network, shapes))

    def attempt(batches: Optional[np.ndarray], replay: bytes) -> Tuple[Any, Dict[str, Any]]:
        calibrator = make_calibrator(trt, spec["algorithm"], batches, spec.get("cache_path"), replay, opener)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # deprecated in 10.x, still the way below 11
            config.int8_calibrator = calibrator
        try:
            return builder.build_serialized_network(network, config), calibrator.summary()
        finally:
            calibrator.free()

    serialized, used = attempt(frames, fallback)
    used["scales"] = "tensorrt calibration" if used["batches_fed"] else "calibration cache"
    if frames is None and fallback and not used["batches_fed"]:
        used["scales"] = source
        notes.append(f"INT8 scales from {source}, not from TensorRT's calibrator")
    if serialized is None and frames is not None and fallback:
        errors = used["errors"] + [line for line in log if line.startswith("[ERROR]")][-1:]
        notes.append(
            f"TensorRT's calibration failed ({'; '.join(errors) or 'no reason logged'}): INT8 scales from {source} "
            "instead (fallback)"
        )
        serialized, retry = attempt(None, fallback)
        used = dict(retry, scales=source, failed_calibration=used)
    return serialized, used, notes


def build(trt: Any, job: Mapping[str, Any]) -> Dict[str, Any]:
    """Build the engine the job describes; returns precision, notes, log and details."""
    log: List[str] = []
    options = job["options"]
    feat = features(trt)
    dla_core, level = options.get("dla_core"), options.get("builder_optimization_level")
    workspace_mb = int(options.get("workspace_mb", 1024))
    logger = make_logger(trt, log)
    # Before parsing, as Polygraphy does (tools/Polygraphy/polygraphy/backend/trt/loader.py, v10.3.0,
    # BaseNetworkFromOnnx.call_impl l.155): plugin-backed ONNX ops (EfficientNMS_TRT, ...) parse only
    # once the plugin library has registered its creators.
    trt.init_libnvinfer_plugins(logger, "")
    builder = trt.Builder(logger)
    fast_fp16 = bool(builder.platform_has_fast_fp16) if feat.platform_flags else None
    plan = plan_build(
        feat,
        job["precision"],
        job["model_qdq"],
        job["model_fp16"],
        bool(job.get("calibration")),
        dla_core,
        fast_fp16=fast_fp16,
        int8_fp16=bool(options.get("int8_fp16", True)),
        gpu_fallback=bool(options.get("gpu_fallback", True)),
    )
    notes = list(plan.notes)
    if feat.platform_flags:
        notes += platform_notes(job["precision"], fast_fp16, builder.platform_has_fast_int8)
    model_path = job["model_path"]
    if plan.convert_fp16:
        model_path = os.path.join(job["work_dir"], "model.fp16.onnx")
        convert_to_fp16(job["model_path"], model_path)
        notes.append(
            "FP16 on this release comes from the model's types: converted the ONNX model to FP16 (inputs and outputs "
            "FP32)"
        )
    network, _parser = _parse(
        trt, builder, logger, plan.network_flags, model_path, job["model_path"]
    )  # the parser must outlive the build
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if level is not None and feat.optimization_level:
        config.builder_optimization_level = int(level)
    elif level is not None:
        notes.append(f"builder_optimization_level {level} ignored: TensorRT {feat.version} has no optimization levels")
    profiles = _add_profile(builder, network, config, job["input_shapes"])
    for name in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    calibration = job.get("calibration") or {}
    pinned = keep_float(trt, network, set(calibration.get("keep_float", ()))) if plan.calibrator else []
    if pinned and hasattr(trt.BuilderFlag, "PREFER_PRECISION_CONSTRAINTS"):  # 8.2 to 10.x; 11 has no calibrator
        config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
        notes.append(f"{len(pinned)} layer(s) kept in FP32 (mixed precision)")
    if dla_core is not None:
        _use_dla(trt, builder, config, int(dla_core), bool(options.get("gpu_fallback", True)))
    if feat.progress_monitor:
        config.progress_monitor = _make_progress_monitor(trt, log)
    cache_path = job.get("timing_cache_path")
    loaded = read_if_present(cache_path)
    if cache_path:
        config.set_timing_cache(config.create_timing_cache(loaded), False)
    calibrated: Optional[Dict[str, Any]] = None
    if plan.calibrator:
        serialized, calibrated, calibration_notes = _build_calibrated(
            trt, builder, network, config, calibration, job, log
        )
        notes += calibration_notes
    else:
        serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        errors = [line for line in log if line.startswith(("[ERROR]", "[INTERNAL_ERROR]"))]
        raise BuildFailed(f"TensorRT could not build the engine: {' | '.join(errors[-3:]) or 'no error logged'}")
    with open(job["engine_path"], "wb") as handle:
        handle.write(serialized)
    timing_cache = None
    if cache_path:
        data = bytes(config.get_timing_cache().serialize())
        os.makedirs(os.path.dirname(cache_path), exist_ok=True)
        atomic_write_bytes(cache_path, data)
        timing_cache = {"path": cache_path, "loaded_bytes": len(loaded), "saved_bytes": len(data)}
    details = {
        "tensorrt": feat.version,
        "network_flags": plan.network_flags,
        "builder_flags": plan.builder_flags,
        "strongly_typed": plan.strongly_typed,
        "calibrator": dict(calibrated, kept_float=pinned) if calibrated else None,
        "converted_fp16": plan.convert_fp16,
        "workspace_mb": workspace_mb,
        "builder_optimization_level": level if feat.optimization_level else None,
        "profiles": profiles,
        "dla_core": dla_core,
        "timing_cache": timing_cache,
    }
    return {"precision": job["precision"], "notes": notes, "log": log, "details": details}


def main(argv: List[str]) -> int:
    job_path, result_path = argv
    with open(job_path, encoding="utf-8") as handle:
        job = json.load(handle)
    try:
        import tensorrt

        result: Dict[str, Any] = {"ok": True, **build(tensorrt, job)}
    except EdgeAgentError as exc:
        result = {"ok": False, "error": str(exc), "input_error": isinstance(exc, InputError)}
    except Exception as exc:  # the builder's own exceptions: report, do not lose the reason
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "input_error": False}
    atomic_write_json(result_path, result)
    return 0 if result["ok"] else 1


# ----------------------------------------------------------------------------- parent side
def _tree_rss_mb(process: Any) -> float:
    import psutil

    total = 0
    for proc in [process] + process.children(recursive=True):
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total / (1 << 20)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"the build process died of {signal.Signals(-code).name}"
        except ValueError:
            return f"the build process died of signal {-code}"
    return f"the build process exited with status {code} without a result"


def _child_env() -> Dict[str, str]:
    """The parent's environment, with the folder holding ``agent`` first on PYTHONPATH."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def run_isolated(
    job: Mapping[str, Any], timeout_s: float, memory_limit_mb: Optional[float], poll_s: float = 0.1
) -> Dict[str, Any]:
    """Run ``build`` in a child process; return its result or raise BuildFailed/InputError with the reason."""
    import psutil

    with tempfile.TemporaryDirectory(prefix="edge-agent-trt-build-") as work:
        job_path, result_path, err_path = (os.path.join(work, n) for n in ("job.json", "result.json", "stderr.txt"))
        atomic_write_json(job_path, dict(job, work_dir=work))
        with open(err_path, "wb") as stderr:
            child = subprocess.Popen(
                [sys.executable, "-m", "agent.backends.tensorrt.build_child", job_path, result_path],
                stdout=subprocess.DEVNULL,
                env=_child_env(),
                stderr=stderr,
                start_new_session=True,
            )
        watched = psutil.Process(child.pid)
        started, peak, cancel = time.monotonic(), [0.0], ambient()  # a cancelled build stops the child too

        def stop_reason() -> Optional[str]:
            try:
                peak[0] = max(peak[0], _tree_rss_mb(watched))
            except psutil.Error:
                pass
            if cancel is not None and cancel():
                return CANCELLED
            if memory_limit_mb and peak[0] > memory_limit_mb:
                return f"the build used {peak[0]:.0f} MiB, over build_memory_limit_mb={memory_limit_mb:g}; stopped"
            if time.monotonic() - started > timeout_s:
                return f"the build ran over build_timeout_s={timeout_s:g} s; stopped"
            return None

        reason = wait_unless(child, stop_reason, poll_s)
        if reason == CANCELLED:
            raise Cancelled("TensorRT build: cancelled (a stop was asked for); the build process was stopped")
        if reason:
            raise BuildFailed(f"TensorRT build failed: {reason}")
        if os.path.isfile(result_path):
            with open(result_path, encoding="utf-8") as handle:
                result = json.load(handle)
            if result["ok"]:
                result.setdefault("details", {})["peak_rss_mb"] = round(peak[0], 1)
                return result
            raise (InputError if result.get("input_error") else BuildFailed)(result["error"])
        with open(err_path, "rb") as err:
            tail = err.read()[-600:].decode("utf-8", "replace").strip()
        raise BuildFailed(
            f"TensorRT build failed: {_describe_exit(child.returncode)}" + (f"; stderr: {tail}" if tail else "")
        )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
