"""A strict test double of the ``tensorrt`` module, generated from tests/tensorrt/api/trt-<release>.json.

(Those files are copies of the project's shared API name lists, ../shared/tensorrt-api/, so CI
has them; their README says how they were extracted.)

``EDGE_TRT_DOUBLE_RELEASE`` picks the release (8.5.2, 8.6.1, 10.3.0, 10.13.3, 11.1). Only the
names that release binds exist: classes, their methods and properties (inherited through
``bases``), enum members, module functions and attributes; anything else is an AttributeError,
setting a property the class lacks too, and a name listed as deprecated warns when called. A
bound name whose behaviour is not modelled here raises NotImplementedError (it exists, but
nothing here pretends to know what it does).

Modelled behaviour, from TensorRT's documentation: parsing an ONNX file (with onnx), building
(checks the network flags, builder flags, optimization profiles, calibrator, timing cache, DLA
cores and, on 11, strong typing; calls the progress monitor), serializing into a plan tagged with
the release, deserializing (a plan from another release fails as TensorRT does: None and an
error in the log), and executing: inputs are read from and outputs written to the tensor
addresses as host pointers, the model itself runs in ONNX Runtime. Device facts come from
``EDGE_TRT_DOUBLE_DEVICE`` (JSON: fast_fp16, fast_int8, dla_cores, crash = segv|oom|hang).

Typing and precision as each release documents them (sources at each rule below): on a weakly
typed network layers run FP16 only with BuilderFlag.FP16, whatever the model's types; a strongly
typed network refuses precision flags; 11.x networks are always strongly typed. Plugin ops
(:data:`PLUGIN_OPS`) parse, and engines holding them deserialize, only after
``init_libnvinfer_plugins`` in that process. An output dimension that no input dimension names
(NonZero, NonMaxSuppression) is data-dependent: -1 in every shape query, even with the input
shapes set, and the run writes it only through an ``IOutputAllocator`` set for it.

Quantization as TensorRT's parser and calibrator behave: a DequantizeLinear of a constant that
is not INT8 (INT8/FP8/INT4 from 10.x), UINT8 Q/DQ data or zero points and non-zero zero points
fail to parse with onnx-tensorrt's messages. Implicit INT8 follows ``IInt8Calibrator``: the cache
is used only when its header names this release and the calibrator's algorithm, else the
calibrator's batches (device pointers, read as host memory) run through the model in ONNX
Runtime and a cache of every tensor's scale is written back; tensors a cache lacks are warned
about one by one. The scales are maxima whatever the algorithm, and an implicit INT8 engine runs
the float model: the double proves the protocol, not TensorRT's INT8 numerics.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import time
import warnings
from typing import Any, Callable, Dict, List

import numpy as np

_API_DIR = os.environ.get("EDGE_TRT_API_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "api"))
RELEASE = os.environ["EDGE_TRT_DOUBLE_RELEASE"]
_API = json.load(open(os.path.join(_API_DIR, f"trt-{RELEASE}.json"), encoding="utf-8"))
_DEVICE = {"fast_fp16": True, "fast_int8": True, "dla_cores": 0, "crash": None}
_DEVICE.update(json.loads(os.environ.get("EDGE_TRT_DOUBLE_DEVICE", "{}")))
_bool = bool  # the module attribute `bool` (DataType.BOOL) shadows the builtin below
_MAGIC = b"ptrtDBL\0"
_module = sys.modules[__name__]
# Op types the TensorRT plugin library registers (creator names in plugin/README.md of NVIDIA/TensorRT,
# v10.3.0; the same names at 8.5.2): the ONNX parser imports a node of one of them through its plugin
# fallback importer, which needs the creator in the registry (onnx-tensorrt, importFallbackPluginImporter /
# checkFallbackPluginImporter).
PLUGIN_OPS = frozenset(
    {
        "EfficientNMS_TRT",
        "EfficientNMS_ONNX_TRT",
        "BatchedNMS_TRT",
        "BatchedNMSDynamic_TRT",
        "NMSDynamic_TRT",
        "ROIAlign_TRT",
        "ResizeNearest_TRT",
        "GridAnchor_TRT",
        "InstanceNormalization_TRT",
        "PyramidROIAlign_TRT",
    }
)
_PLUGINS = {"initialised": False}  # per process, as the plugin registry is


# ----------------------------------------------------------------------------- generation
class _EnumMember:
    def __init__(self, enum: str, name: str, value: int) -> None:
        self.enum, self.name, self.value = enum, name, value

    def __int__(self) -> int:
        return self.value

    def __index__(self) -> int:
        return self.value

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, _EnumMember) and (other.enum, other.value) == (self.enum, self.value)

    def __hash__(self) -> int:
        return hash((self.enum, self.value))

    def __repr__(self) -> str:
        return f"<{self.enum}.{self.name}: {self.value}>"


def _make_enum(name: str, members: List[str]) -> type:
    return type(name.split(".")[-1], (), {m: _EnumMember(name, m, i) for i, m in enumerate(members)})


def _not_modelled(qualified: str) -> Callable[..., Any]:
    def method(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"tensorrt double: {qualified} exists in {RELEASE} but is not modelled")

    return method


def _deprecating(qualified: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def method(*args: Any, **kwargs: Any) -> Any:
        warnings.warn(f"{qualified} is deprecated in TensorRT {RELEASE}", DeprecationWarning, stacklevel=2)
        return function(*args, **kwargs)

    return method


def _property(qualified: str, name: str, deprecated: bool) -> property:
    getter = _BEHAVIOUR.get(qualified)

    def get(self: Any) -> Any:
        if getter is not None:
            return getter(self)
        return self.__dict__.get("_p_" + name)

    def set_(self: Any, value: Any) -> None:
        if deprecated:
            warnings.warn(f"{qualified} is deprecated in TensorRT {RELEASE}", DeprecationWarning, stacklevel=2)
        self.__dict__["_p_" + name] = value

    return property(get, set_)


def _strict_setattr(self: Any, name: str, value: Any) -> None:
    if type(self).__module__ == __name__ and not name.startswith("_") and not hasattr(type(self), name):
        raise AttributeError(f"tensorrt {RELEASE}: {type(self).__name__} has no attribute {name!r}")
    object.__setattr__(self, name, value)


def _generate() -> None:
    for name, members in _API["enums"].items():
        if "." not in name:
            setattr(_module, name, _make_enum(name, members))
    classes = _API["classes"]
    made: Dict[str, type] = {}

    def make(name: str) -> type:
        if name in made:
            return made[name]
        spec = classes[name]
        if spec.get("alias_of"):
            made[name] = make(spec["alias_of"])
            return made[name]
        bases = tuple(make(b) for b in spec["bases"]) or (object,)
        if spec.get("buffer_protocol"):
            bases = (bytes,) + bases
        deprecated = set(spec.get("deprecated", []))
        namespace: Dict[str, Any] = {"__module__": __name__, "__setattr__": _strict_setattr}
        for method in spec["methods"]:
            qualified = f"{name}.{method}"
            function = _BEHAVIOUR.get(qualified) or (
                None if method.startswith("__") and method != "__init__" else _not_modelled(qualified)
            )
            if function is None:
                continue
            namespace[method] = _deprecating(qualified, function) if method in deprecated else function
        for prop in spec["properties"]:
            namespace[prop] = _property(f"{name}.{prop}", prop, prop in deprecated)
        if "__init__" not in spec["methods"] and not spec["bases"]:
            namespace["__init__"] = _no_constructor(name)
        made[name] = type(name, bases, namespace)
        return made[name]

    for name in classes:
        setattr(_module, name, make(name))
    for name, members in _API["enums"].items():
        if "." in name:
            owner, short = name.split(".")
            enum = _make_enum(name, members)
            for cls_name, spec in classes.items():
                if short in spec.get("attributes", []) and (cls_name == owner or owner in spec["bases"]):
                    setattr(made[cls_name], short, enum)
                    for member in members:
                        if member in spec.get("attributes", []):
                            setattr(made[cls_name], member, getattr(enum, member))
    for name in _API["functions"]:
        setattr(_module, name, _BEHAVIOUR.get(name) or _not_modelled(name))
    for name in _API["module_attributes"]:
        if name == "__version__":
            setattr(_module, name, RELEASE)
        elif name != "_plugin_registry":
            shortcut = {"float32": "FLOAT", "float16": "HALF", "bfloat16": "BF16"}.get(name, name.upper())
            setattr(_module, name, getattr(_module.DataType, shortcut))


def _no_constructor(name: str) -> Callable[..., Any]:
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        if not kwargs.get("_double"):
            raise TypeError(f"tensorrt.{name}: No constructor defined!")

    return init


def _new(class_name: str, **fields: Any) -> Any:
    """An instance of a generated class the way TensorRT hands it out (no public constructor)."""
    obj = getattr(_module, class_name).__new__(getattr(_module, class_name))
    obj.__dict__.update({"_" + k: v for k, v in fields.items()})
    return obj


def _log(logger: Any, severity: str, message: str) -> None:
    logger.log(getattr(_module.ILogger.Severity, severity), message)


# ----------------------------------------------------------------------------- behaviour
_DTYPES = {
    "float32": "FLOAT",
    "float16": "HALF",
    "int8": "INT8",
    "int32": "INT32",
    "int64": "INT64",
    "bool": "BOOL",
    "uint8": "UINT8",
}


def _flag_set(flags: int, enum: str, member: str) -> bool:
    value = getattr(getattr(_module, enum), member, None)
    return value is not None and _bool(flags & (1 << int(value)))


def _builder_init(self: Any, logger: Any) -> None:
    self._logger = logger


def _create_network(self: Any, flags: int = 0) -> Any:
    known = sum(
        1 << int(getattr(_module.NetworkDefinitionCreationFlag, m))
        for m in _API["enums"]["NetworkDefinitionCreationFlag"]
    )
    if flags & ~known:
        raise TypeError(f"create_network: flags {flags:#x} hold bits this release does not define")
    return _new(
        "INetworkDefinition",
        flags=int(flags),
        model=None,
        inputs=[],
        outputs=[],
        layers=[],
        tensors=[],
        logger=self._logger,
    )


def _init_plugins(logger: Any, namespace: str) -> bool:
    _PLUGINS["initialised"] = True
    return True


# Input types a DequantizeLayer takes (IDequantizeLayer in NvInfer.h: INT8 on 8.5/8.6; INT8, FP8 and, from 10.0,
# INT4 on 10.x/11.x). A constant of another type becomes a tensor of that type, and TensorRT refuses it with
# "<node>: only activation types allowed as input to this layer" (the log in microsoft/onnxruntime#14229 and
# onnx/onnx-tensorrt#850: an INT32 bias from ONNX Runtime's quantize_static).
_DQ_INPUTS = ("INT8",) if RELEASE.startswith("8.") else ("INT8", "FLOAT8E4M3FN", "INT4")


def _qdq_problem(node: Any, initializers: Dict[str, Any]) -> str:
    """What TensorRT's ONNX parser says about a Q/DQ node's constant inputs ("" when it takes it).

    QuantDequantLinearHelper (builtin_op_importers.cpp, onnx/onnx-tensorrt release/8.6-GA l.1157-1300)
    refuses UINT8 data or zero points ("notInvalidType") and non-zero zero points ("TensorRT only
    supports symmetric quantization")."""
    import onnx
    from onnx import numpy_helper

    if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
        return ""
    data = initializers.get(node.input[0])
    zero = initializers.get(node.input[2]) if len(node.input) > 2 else None
    for tensor in (data, zero):
        if tensor is not None and tensor.data_type == onnx.TensorProto.UINT8:
            return f"{node.name}: Found invalid input type of UINT8"
    if node.op_type == "DequantizeLinear" and data is not None:
        type_name = onnx.TensorProto.DataType.Name(data.data_type)
        if type_name not in _DQ_INPUTS:
            return f"{node.name}: only activation types allowed as input to this layer."
    if zero is not None and numpy_helper.to_array(zero).any():
        return (
            f"{node.name}: TensorRT only supports symmetric quantization. The zero point for the "
            "QuantizeLinear/DequantizeLinear operator must be all zeros."
        )
    return ""


def _parser_init(self: Any, network: Any, logger: Any) -> None:
    self._network, self._logger, self._errors = network, logger, []


def _parse_from_file(self: Any, path: str) -> bool:
    import onnx

    network = self._network
    if RELEASE.startswith("8.") and not _flag_set(network._flags, "NetworkDefinitionCreationFlag", "EXPLICIT_BATCH"):
        self._errors.append("Network must have explicit batch dimension (EXPLICIT_BATCH) to parse ONNX models")
        return False
    try:
        model = onnx.load(path)
        plugins = sorted({n.op_type for n in model.graph.node} & PLUGIN_OPS)
        if not plugins:  # plugin ops have no ONNX schema: TensorRT imports them through its plugin registry
            onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises several types
        self._errors.append(f"ModelImporter: failed to parse {path}: {exc}")
        return False
    if plugins and not _PLUGINS["initialised"]:
        self._errors.append(
            f"In node 0 with operator: {plugins[0]} (checkFallbackPluginImporter): INVALID_NODE: creator && "
            '"Plugin not found, are the plugin name, version, and namespace correct?"'
        )
        return False
    initializers = {i.name: i for i in model.graph.initializer}
    for index, node in enumerate(model.graph.node):
        problem = _qdq_problem(node, initializers)
        if problem:
            self._errors.append(f"In node {index} (parseGraph): INVALID_NODE: Invalid Node - {node.name}\n{problem}")
            return False

    def tensors(values: Any) -> List[Any]:
        out = []
        for value in values:
            if value.name in initializers:
                continue
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim)
            dtype = _DTYPES[str(onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type))]
            out.append(_new("ITensor", name=value.name, shape=dims, dtype=getattr(_module.DataType, dtype)))
        return out

    ops = {node.op_type for node in model.graph.node}
    named = {d.dim_param for v in model.graph.input for d in v.type.tensor_type.shape.dim if d.dim_param}
    network._data_dependent = {
        value.name: [i for i, d in enumerate(value.type.tensor_type.shape.dim) if not d.HasField("dim_value")]
        for value in model.graph.output
        if any(not d.HasField("dim_value") and d.dim_param not in named for d in value.type.tensor_type.shape.dim)
    }
    network._layers = [
        # onnx-tensorrt names a node's layer after the node, an unnamed node "node_of_<first output>"
        # (getNodeName, onnx2trt_utils.cpp l.1976, onnx/onnx-tensorrt release/8.6-GA).
        _new("ILayer", p_name=node.name or f"node_of_{node.output[0]}", outputs=len(node.output))
        for node in model.graph.node
    ]
    network._tensors = [v.name for v in model.graph.input if v.name not in initializers] + [
        out for node in model.graph.node for out in node.output if out
    ]
    network._model = model.SerializeToString()
    network._plugins = plugins
    network._qdq = _bool(ops & {"QuantizeLinear", "DequantizeLinear"})
    network._fp16 = any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    network._inputs, network._outputs = tensors(model.graph.input), tensors(model.graph.output)
    return True


def _host_memory(data: bytes) -> Any:
    return bytes.__new__(_module.IHostMemory, data)


def _config_init_fields(self: Any) -> None:
    if "_pools" not in self.__dict__:
        self.__dict__.update(_pools={}, _flags=set(), _profiles=[], _cache=None)


def _config(method: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(self: Any, *args: Any) -> Any:
        _config_init_fields(self)
        return method(self, *args)

    return wrapped


def _set_pool(self: Any, pool: Any, size: int) -> None:
    self._pools[pool.name] = int(size)


def _add_profile(self: Any, profile: Any) -> int:
    self._profiles.append(profile)
    return len(self._profiles) - 1


def _create_timing_cache(self: Any, data: bytes) -> Any:
    entries = json.loads(bytes(data).decode())["entries"] if data else 0
    if data and json.loads(bytes(data).decode())["release"] != RELEASE:
        entries = 0
    return _new("ITimingCache", entries=entries, loaded=entries)


def _set_timing_cache(self: Any, cache: Any, ignore_mismatch: bool) -> bool:
    self._cache = cache
    return True


def _set_shape(self: Any, name: str, low: Any, opt: Any, high: Any) -> None:
    self.__dict__.setdefault("_shapes", {})[name] = tuple(tuple(int(d) for d in s) for s in (low, opt, high))


def _crash() -> None:
    mode = _DEVICE.get("crash")
    if mode == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif mode == "oom":
        hog = []
        while True:
            hog.append(np.ones(32 * 1024 * 1024, np.uint8))
            time.sleep(0.01)
    elif mode == "hang":
        time.sleep(3600)


def _build_serialized_network(self: Any, network: Any, config: Any) -> Any:
    _config_init_fields(config)
    logger = self._logger
    flags = {f.name for f in config._flags}

    def fail(message: str) -> None:
        _log(logger, "ERROR", message)

    _crash()
    strong = _flag_set(network._flags, "NetworkDefinitionCreationFlag", "STRONGLY_TYPED")
    if network._model is None:
        return fail("Network has no layers (nothing was parsed)")
    # 11.x: "Strongly typed mode is always enabled"; the flag is ignored (NvInfer.h v11.1 l.11464-11471).
    strong = strong or RELEASE.startswith("11.")
    # Strongly typed networks take their types from the network and refuse precision flags (NvInfer.h
    # v10.3.0 l.9616-9620; the developer guide's "Strong Typing").
    if strong and flags & {"FP16", "INT8", "BF16"}:
        return fail(
            f"Builder flags {sorted(flags & {'FP16', 'INT8', 'BF16'})} are not allowed with a strongly typed network"
        )
    if network._qdq and not strong and "INT8" not in flags:
        return fail("Network has Q/DQ layers: enable BuilderFlag.INT8 or create it STRONGLY_TYPED")
    calibrator = getattr(config, "int8_calibrator", None) if hasattr(type(config), "int8_calibrator") else None
    scales: Dict[str, float] = {}
    if "INT8" in flags and not network._qdq:
        if calibrator is None:
            return fail("Calibration failure: INT8 without Q/DQ layers needs a calibrator")
        found = _calibrate(network, config, calibrator, logger)
        if isinstance(found, str):
            return fail(found)
        scales = found
    profiles = {}
    for tensor in network._inputs:
        if -1 in tensor._shape:
            shapes = [p.__dict__.get("_shapes", {}).get(tensor._name) for p in config._profiles]
            if not shapes or shapes[0] is None:
                return fail(
                    "Network has dynamic or shape inputs, but no optimization profile has been defined for "
                    f"{tensor._name}"
                )
            low, opt, high = shapes[0]
            if (
                not all(len(s) == len(tensor._shape) for s in shapes[0])
                or any(d != -1 and not (lo == op == hi == d) for d, lo, op, hi in zip(tensor._shape, low, opt, high))
                or any(not (lo <= op <= hi) for lo, op, hi in zip(low, opt, high))
            ):
                return fail(f"Invalid optimization profile for {tensor._name}: {shapes[0]}")
            profiles[tensor._name] = shapes[0]
        else:
            profiles[tensor._name] = (tensor._shape,) * 3
    if getattr(config, "default_device_type", None) == _module.DeviceType.DLA:
        core = config.DLA_core or 0
        if core >= _DEVICE["dla_cores"]:
            return fail(f"DLA core {core} requested but the device has {_DEVICE['dla_cores']} DLA cores")
    monitor = getattr(config, "progress_monitor", None) if hasattr(type(config), "progress_monitor") else None
    if monitor is not None:
        monitor.phase_start("Building engine", None, 2)
        for step in range(2):
            if not monitor.step_complete("Building engine", step):
                return fail("Build cancelled by the progress monitor")
        monitor.phase_finish("Building engine")
    if config._cache is not None:
        _log(logger, "INFO", f"Loaded {config._cache._loaded} timing cache entries")
        config._cache._entries += 3
    if strong:
        precision = "int8" if network._qdq else "fp16" if network._fp16 else "fp32"
        fallback = "fp16" if network._fp16 else "fp32"
    else:
        # Weakly typed: precision comes from the builder flags; FP16 types in the model alone build FP32
        # kernels (NVIDIA/TensorRT#3057), and INT8 falls back to FP16 only "if kFP16 also specified"
        # (BuilderFlag::kINT8, NvInfer.h v10.3.0 l.8302).
        precision = "int8" if "INT8" in flags else "fp16" if "FP16" in flags else "fp32"
        fallback = "fp16" if "FP16" in flags else "fp32"
    pinned = []
    if not strong and flags & {"PREFER_PRECISION_CONSTRAINTS", "OBEY_PRECISION_CONSTRAINTS"}:
        # A layer precision binds only with one of these flags (ILayer::setPrecision, NvInfer.h v8.6.1 l.637-659).
        pinned = [layer._p_name for layer in network._layers if layer.__dict__.get("_p_precision") is not None]
    _log(
        logger,
        "INFO",
        f"Engine layer info: {precision} layers, unquantized layers {fallback}, FP32 by constraint: {pinned}",
    )
    header = {
        "release": RELEASE,
        "precision": precision,
        "fallback": fallback,
        "plugins": network._plugins,
        "profiles": profiles,
        "inputs": [[t._name, list(t._shape), t._dtype.name] for t in network._inputs],
        "outputs": [[t._name, list(t._shape), t._dtype.name] for t in network._outputs],
        "data_dependent": network._data_dependent,
        "int8_scales": len(scales),
        "pinned_fp32": pinned,
    }
    blob = json.dumps(header).encode()
    _log(logger, "INFO", f"Engine built: {precision}, {len(network._model)} bytes of model")
    return _host_memory(_MAGIC + len(blob).to_bytes(4, "little") + blob + network._model)


def _version_number() -> int:
    """NV_TENSORRT_VERSION: major*1000+minor*100+patch below 10, major*10000+... from 10
    (include/NvInferRuntimeBase.h, NVIDIA/TensorRT v8.6.1 and v10.3.0)."""
    major, minor, patch = (int(p) for p in (RELEASE.split(".") + ["0", "0"])[:3])
    return major * (10000 if major >= 10 else 1000) + minor * 100 + patch


def _algorithm(calibrator: Any) -> str:
    for cls, name in (
        ("IInt8EntropyCalibrator2", "EntropyCalibration2"),
        ("IInt8MinMaxCalibrator", "MinMaxCalibration"),
        ("IInt8EntropyCalibrator", "EntropyCalibration"),
        ("IInt8LegacyCalibrator", "LegacyCalibration"),
    ):
        if isinstance(calibrator, getattr(_module, cls)):
            return name
    raise TypeError(f"{type(calibrator).__name__} is not a TensorRT calibrator")


def _read_cache(text: str, expected: str) -> Any:
    """The scales of a cache whose header is ``expected``; None for another release or algorithm."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].strip() != expected:
        return None
    scales = {}
    for line in lines[1:]:
        name, _, value = line.rpartition(": ")
        scales[name] = float(np.frombuffer(bytes.fromhex(value.strip().rjust(8, "0")), ">f4")[0])
    return scales


def _tensor_maxima(network: Any, shapes: Dict[str, Any], calibrator: Any, logger: Any) -> Any:
    """Feed the calibrator's batches (device pointers, read as host memory here) through the model;
    the largest |value| of every network tensor, or an error when no batch came."""
    import onnx
    import onnxruntime

    model = onnx.load_from_string(network._model)
    known = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(t) for t in network._tensors if t not in known)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    maxima: Dict[str, float] = {}
    batches = 0
    while True:
        pointers = calibrator.get_batch([t._name for t in network._inputs])
        if pointers is None:
            break
        batches += 1
        feeds = {
            t._name: _host_view(int(p), shapes[t._name], t._dtype.name).copy()
            for t, p in zip(network._inputs, pointers)
        }
        values = dict(zip(names, session.run(None, feeds)), **feeds)
        for name, value in values.items():
            maxima[name] = max(maxima.get(name, 0.0), float(np.abs(value).max()) if value.size else 0.0)
    return maxima if batches else None


def _calibrate(network: Any, config: Any, calibrator: Any, logger: Any) -> Any:
    """Implicit INT8 as IInt8Calibrator documents it (NvInfer.h v8.6.1 l.8267-8340): the cache first, used
    only when its header names this release and the calibrator's algorithm (TensorRT skips another one
    and calibrates, NVIDIA/TensorRT#1378); else batches until get_batch returns None, then the cache is
    written. Scales: tensor name -> amax/127, or an error message. The double's scales are maxima
    whatever the algorithm: it proves the protocol, not TensorRT's entropy search."""
    expected = f"TRT-{_version_number()}-{_algorithm(calibrator)}"
    cache = calibrator.read_calibration_cache()
    scales = _read_cache(bytes(cache).decode("utf-8", "replace"), expected) if cache else None
    if scales is None:
        if cache:
            _log(logger, "INFO", f"double: calibration cache header is not {expected}: ignored, calibrating")
        profile = config.__dict__.get("_calibration_profile")
        shapes = {}
        for tensor in network._inputs:
            chosen = profile.__dict__.get("_shapes", {}).get(tensor._name) if profile is not None else None
            if chosen is None and -1 in tensor._shape:
                return (
                    "Calibration optimization profile must be set if int8 calibration is used to set scales for a "
                    "network with runtime dimensions"
                )
            shapes[tensor._name] = chosen[1] if chosen else tensor._shape
        if RELEASE.startswith("8."):
            calibrator.get_batch_size()
        maxima = _tensor_maxima(network, shapes, calibrator, logger)
        if maxima is None:
            return "Calibration failure occurred with no scaling factors detected."
        scales = {name: amax / 127.0 for name, amax in maxima.items()}
        lines = [expected] + [
            f"{n}: {int.from_bytes(np.float32(v).astype('>f4').tobytes(), 'big'):x}" for n, v in sorted(scales.items())
        ]
        calibrator.write_calibration_cache(memoryview("\n".join(lines).encode() + b"\n"))
    else:
        _log(logger, "INFO", f"Calibration cache read: {len(scales)} scales")
    for tensor in network._tensors:
        if tensor not in scales:
            _log(
                logger,
                "WARNING",
                f"Missing scale and zero-point for tensor {tensor}, expect fall back to non-int8 implementation for "
                "any layer consuming or producing given tensor",
            )
    return scales


def _runtime_init(self: Any, logger: Any) -> None:
    self._logger = logger


def _deserialize(self: Any, data: Any) -> Any:
    data = bytes(data)
    if not data.startswith(_MAGIC):
        _log(
            self._logger,
            "ERROR",
            "1: [stdArchiveReader.cpp::StdArchiveReader::32] Error Code 1: Serialization "
            "(Serialization assertion magicTagRead == kMAGIC_TAG failed.Magic tag does not match)",
        )
        return None
    size = int.from_bytes(data[len(_MAGIC) : len(_MAGIC) + 4], "little")
    header = json.loads(data[len(_MAGIC) + 4 : len(_MAGIC) + 4 + size])
    if header["release"] != RELEASE:
        _log(
            self._logger,
            "ERROR",
            "6: The engine plan file is not compatible with this version of TensorRT, "
            f"expecting library version {RELEASE} got {header['release']}, please rebuild.",
        )
        return None
    if header["plugins"] and not _PLUGINS["initialised"]:
        # An engine's plugin layers are recreated from the registry of the deserializing process.
        _log(self._logger, "ERROR", f"getPluginCreator could not find plugin: {header['plugins'][0]} version: 1")
        _log(
            self._logger,
            "ERROR",
            "Error Code 1: Serialization (Cannot deserialize plugin since corresponding "
            "IPluginCreator not found in Plugin Registry)",
        )
        return None
    return _new("ICudaEngine", header=header, model=data[len(_MAGIC) + 4 + size :], logger=self._logger)


def _io(self: Any) -> List[Any]:
    return self._header["inputs"] + self._header["outputs"]


def _tensor(self: Any, name: str) -> Any:
    for entry in _io(self):
        if entry[0] == name:
            return entry
    raise ValueError(f"no tensor {name!r}")


def _dims(shape: Any) -> Any:
    dims = _module.Dims.__new__(_module.Dims)
    dims.__dict__["_d"] = [int(d) for d in shape]
    return dims


def _create_context(self: Any) -> Any:
    return _new("IExecutionContext", engine=self, shapes={}, addresses={}, allocators={})


def _set_output_allocator(self: Any, name: str, allocator: Any) -> bool:
    self._allocators[name] = allocator
    return True


def _set_input_shape(self: Any, name: str, shape: Any) -> bool:
    low, _, high = self._engine._header["profiles"][name]
    shape = tuple(int(d) for d in shape)
    if len(shape) != len(low) or any(not (lo <= s <= hi) for lo, s, hi in zip(low, shape, high)):
        return False
    self._shapes[name] = shape
    return True


def _context_tensor_shape(self: Any, name: str) -> Any:
    if name in self._shapes:
        return _dims(self._shapes[name])
    if name in self._engine._header["data_dependent"]:
        # Data-dependent dims stay -1 until the run: IOutputAllocator::notifyShape reports them (NvInferRuntime.h,
        # v10.3.0, class IOutputAllocator; getTensorShape "-1 ... for data-dependent" dimensions).
        return _dims(_tensor(self._engine, name)[1])
    batch = next(iter(self._shapes.values()))[0] if self._shapes else -1
    return _dims([batch if d == -1 else d for d in _tensor(self._engine, name)[1]])


def _host_view(ptr: int, shape: Any, dtype: str) -> np.ndarray:
    dt = np.dtype({v: k for k, v in _DTYPES.items()}[dtype])
    count = int(np.prod(shape))
    return np.ctypeslib.as_array((ctypes.c_uint8 * (count * dt.itemsize)).from_address(ptr)).view(dt).reshape(shape)


def _execute_async_v3(self: Any, stream: int) -> bool:
    import onnxruntime

    engine = self._engine
    if "_session" not in engine.__dict__:
        engine.__dict__["_session"] = onnxruntime.InferenceSession(engine._model, providers=["CPUExecutionProvider"])
    feeds = {n: _host_view(self._addresses[n], self._shapes[n], dt).copy() for n, _, dt in engine._header["inputs"]}
    for (name, _, dtype), value in zip(engine._header["outputs"], engine._session.run(None, feeds)):
        address = self._addresses.get(name)
        if name in engine._header["data_dependent"]:
            allocator = self._allocators.get(name)
            if allocator is None:
                _log(engine._logger, "ERROR", f"Neither address or allocator is set for output tensor {name}")
                return False
            # 10.x and 11.x call reallocate_output_async when Python overrides it, else reallocate_output.
            reallocate = getattr(allocator, "reallocate_output_async", None)
            args = (name, address or 0, max(1, value.nbytes), 256)
            address = reallocate(*args, stream) if reallocate else allocator.reallocate_output(*args)
            allocator.notify_shape(name, _dims(value.shape))
        _host_view(address, value.shape, dtype)[...] = value
    return True


def _set_address(self: Any, name: str, ptr: int) -> bool:
    self._addresses[name] = int(ptr)
    return True


def _cache_serialize(self: Any) -> Any:
    return _host_memory(json.dumps({"release": RELEASE, "entries": self._entries}).encode())


_BEHAVIOUR: Dict[str, Any] = {
    "init_libnvinfer_plugins": _init_plugins,
    "ILogger.__init__": lambda self: None,
    "IProgressMonitor.__init__": lambda self: None,
    "IOutputAllocator.__init__": lambda self: None,
    "IInt8Calibrator.__init__": lambda self: None,
    "IInt8EntropyCalibrator2.__init__": lambda self: None,
    "IInt8EntropyCalibrator.__init__": lambda self: None,
    "IInt8MinMaxCalibrator.__init__": lambda self: None,
    "IBuilderConfig.set_calibration_profile": _config(
        lambda self, p: self.__dict__.update(_calibration_profile=p) or True
    ),
    "INetworkDefinition.num_layers": lambda self: len(self._layers),
    "INetworkDefinition.get_layer": lambda self, i: self._layers[i],
    "ILayer.num_outputs": lambda self: self._outputs,
    "ILayer.set_output_type": lambda self, i, dtype: self.__dict__.setdefault("_output_types", {}).update({i: dtype}),
    "Builder.__init__": _builder_init,
    "Builder.create_network": _create_network,
    "Builder.create_builder_config": lambda self: _new("IBuilderConfig"),
    "Builder.create_optimization_profile": lambda self: _new("IOptimizationProfile"),
    "Builder.build_serialized_network": _build_serialized_network,
    "Builder.platform_has_fast_fp16": lambda self: _bool(_DEVICE["fast_fp16"]),
    "Builder.platform_has_fast_int8": lambda self: _bool(_DEVICE["fast_int8"]),
    "Builder.num_DLA_cores": lambda self: int(_DEVICE["dla_cores"]),
    "INetworkDefinition.num_inputs": lambda self: len(self._inputs),
    "INetworkDefinition.num_outputs": lambda self: len(self._outputs),
    "INetworkDefinition.get_input": lambda self, i: self._inputs[i],
    "INetworkDefinition.get_output": lambda self, i: self._outputs[i],
    "ITensor.name": lambda self: self._name,
    "ITensor.shape": lambda self: _dims(self._shape),
    "ITensor.dtype": lambda self: self._dtype,
    "Dims.__getitem__": lambda self, i: self._d[i],
    "Dims.__len__": lambda self: len(self._d),
    "Dims.__repr__": lambda self: f"({', '.join(map(str, self._d))})",
    "OnnxParser.__init__": _parser_init,
    "OnnxParser.parse_from_file": _parse_from_file,
    "OnnxParser.num_errors": lambda self: len(self._errors),
    "OnnxParser.get_error": lambda self, i: _new("ParserError", text=self._errors[i]),
    "ParserError.desc": lambda self: self._text,
    "ParserError.__str__": lambda self: self._text,
    "IBuilderConfig.set_memory_pool_limit": _config(_set_pool),
    "IBuilderConfig.get_memory_pool_limit": _config(lambda self, pool: self._pools.get(pool.name, 0)),
    "IBuilderConfig.set_flag": _config(lambda self, flag: self._flags.add(flag)),
    "IBuilderConfig.get_flag": _config(lambda self, flag: flag in self._flags),
    "IBuilderConfig.add_optimization_profile": _config(_add_profile),
    "IBuilderConfig.create_timing_cache": _config(_create_timing_cache),
    "IBuilderConfig.set_timing_cache": _config(_set_timing_cache),
    "IBuilderConfig.get_timing_cache": _config(lambda self: self._cache),
    "IOptimizationProfile.set_shape": _set_shape,
    "ITimingCache.serialize": _cache_serialize,
    "Runtime.__init__": _runtime_init,
    "Runtime.deserialize_cuda_engine": _deserialize,
    "Runtime.num_DLA_cores": lambda self: int(_DEVICE["dla_cores"]),
    "ICudaEngine.num_io_tensors": lambda self: len(_io(self)),
    "ICudaEngine.get_tensor_name": lambda self, i: _io(self)[i][0],
    "ICudaEngine.get_tensor_mode": lambda self, name: (
        _module.TensorIOMode.INPUT if any(e[0] == name for e in self._header["inputs"]) else _module.TensorIOMode.OUTPUT
    ),
    "ICudaEngine.get_tensor_shape": lambda self, name: _dims(_tensor(self, name)[1]),
    "ICudaEngine.get_tensor_dtype": lambda self, name: getattr(_module.DataType, _tensor(self, name)[2]),
    "ICudaEngine.create_execution_context": _create_context,
    "IExecutionContext.set_input_shape": _set_input_shape,
    "IExecutionContext.get_tensor_shape": _context_tensor_shape,
    "IExecutionContext.set_tensor_address": _set_address,
    "IExecutionContext.execute_async_v3": _execute_async_v3,
    "IExecutionContext.set_output_allocator": _set_output_allocator,
}

_generate()
