"""The engine interface every backend implements (ONNX Runtime now, TensorRT on Jetson).

A backend *builds* an engine file from an ONNX model for one device and precision, and *loads*
it into an :class:`Engine`. An engine takes named numpy arrays and returns named numpy arrays;
``infer_timed`` also reports per-stage times in milliseconds. Backends that move data to a
device report ``h2d``, ``compute`` and ``d2h``; a backend that cannot split its work reports
``compute`` alone.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, TypeVar

import numpy as np

T = TypeVar("T")

Arrays = Dict[str, np.ndarray]
StageTimes = Dict[str, float]  # stage name -> milliseconds, for one call
Dim = Optional[int]  # None: dynamic


@dataclass(frozen=True)
class TensorInfo:
    """A named input or output tensor: shape (None for a dynamic dimension) and numpy dtype name."""

    name: str
    shape: Tuple[Dim, ...]
    dtype: str


@dataclass(frozen=True)
class Int8Calibration:
    """Implicit INT8 (TensorRT below 11): the scales come from TensorRT's own calibrator run over
    ``frames_path``, or from a calibration cache.

    TensorRT first reads the cache at ``cache_path`` (used only when its header names the installed
    release and ``algorithm``) and otherwise calibrates on the frames, writing its own cache there.
    ``fallback_cache`` (cache text for the installed release, e.g. from ONNX Runtime ranges) is
    replayed when there are no frames or TensorRT's calibration fails; ``fallback_source`` says what
    its scales are, for the build notes.
    """

    algorithm: str = "EntropyCalibration2"  # EntropyCalibration2 | MinMaxCalibration | EntropyCalibration
    frames_path: Optional[str] = None  # .npy of preprocessed batches, shape (batches, batch, ...), float32
    cache_path: Optional[str] = None
    fallback_cache: Optional[str] = None
    fallback_source: str = ""
    keep_float: Tuple[str, ...] = ()  # ONNX node names whose layers stay in float (mixed precision)


@dataclass
class BuildRequest:
    """What to build: the ONNX file to start from and everything that shapes the engine."""

    model_path: str
    precision: str  # fp32 | fp16 | int8 (int8: model_path is a QDQ model, or ``calibration`` is set)
    input_shapes: Mapping[str, Tuple[int, ...]]  # the profile the engine must accept
    options: Mapping[str, Any] = field(default_factory=dict)  # backend options from the config
    calibration: Optional[Int8Calibration] = None  # TensorRT < 11 implicit INT8 only
    timeout_s: Optional[float] = None


@dataclass
class BuildOutput:
    """What a build produced, besides the engine file itself."""

    precision: str  # what was built (may differ from what was asked; ``notes`` says why)
    notes: List[str] = field(default_factory=list)
    log: List[str] = field(default_factory=list)
    details: Dict[str, Any] = field(default_factory=dict)


class Engine(abc.ABC):
    """A loaded engine. Not thread-safe: one caller at a time (the daemon's inference loop)."""

    inputs: List[TensorInfo]
    outputs: List[TensorInfo]
    info: Dict[str, Any]

    @abc.abstractmethod
    def infer(self, feeds: Mapping[str, np.ndarray]) -> Arrays:
        """Run one batch; returns every output by name."""

    def infer_timed(self, feeds: Mapping[str, np.ndarray]) -> Tuple[Arrays, StageTimes]:
        """Run one batch and time its stages (ms). The default has one stage, ``compute``."""
        from time import perf_counter

        start = perf_counter()
        outputs = self.infer(feeds)
        return outputs, {"compute": (perf_counter() - start) * 1000.0}

    def close(self) -> None:
        """Release resources (device memory, sessions)."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class HookedEngine(Engine):
    """Another engine with a call before and after each of its inferences: the daemon's jobs report
    progress after each (the watchdog), the INT8 search makes each a cancel point. The wrapped engine's
    own stage times pass through (TensorRT's h2d / compute / d2h split)."""

    def __init__(
        self, engine: Engine, before: Optional[Callable[[], None]] = None, after: Optional[Callable[[], None]] = None
    ) -> None:
        self.inputs, self.outputs, self.info = engine.inputs, engine.outputs, engine.info
        self.engine, self.before, self.after = engine, before, after

    def infer(self, feeds: Mapping[str, np.ndarray]) -> Arrays:
        return self._around(self.engine.infer, feeds)

    def infer_timed(self, feeds: Mapping[str, np.ndarray]) -> Tuple[Arrays, StageTimes]:
        return self._around(self.engine.infer_timed, feeds)

    def _around(self, call: Callable[[Mapping[str, np.ndarray]], T], feeds: Mapping[str, np.ndarray]) -> T:
        if self.before is not None:
            self.before()
        result = call(feeds)
        if self.after is not None:
            self.after()
        return result


class Backend(abc.ABC):
    """Builds and loads engines of one kind."""

    name: str
    engine_suffix: str
    precisions: Tuple[str, ...]

    @abc.abstractmethod
    def version(self) -> str:
        """The runtime's version string; it enters engine cache keys."""

    @abc.abstractmethod
    def device_identity(self) -> Dict[str, Any]:
        """What an engine is tied to on this machine (device name, compute capability, ...)."""

    @abc.abstractmethod
    def build(self, request: BuildRequest, engine_path: str) -> BuildOutput:
        """Build the engine file at ``engine_path``; raise EdgeAgentError with a reason on failure."""

    @abc.abstractmethod
    def load(self, engine_path: str, options: Mapping[str, Any]) -> Engine:
        """Load a built engine file."""
