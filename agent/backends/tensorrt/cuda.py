"""The CUDA buffer layer the TensorRT runtime needs, over pycuda or cuda-python (``cuda.bindings``).

A :class:`CudaLayer` owns one device context and offers what one engine instance uses: a stream,
device buffers, pinned host arrays, async copies, events with elapsed times, and stream capture
into a CUDA graph. Handles (streams, events, graphs) are opaque objects of the binding; pointers
are plain ints, as TensorRT's ``set_tensor_address`` takes them. Every call that touches the
device must run inside ``with layer.active():`` (pycuda keeps a context stack per thread). Whoever
creates a stream, event or graph destroys it with the matching ``destroy_*`` call.
"""

from __future__ import annotations

import abc
import contextlib
import ctypes
from typing import Any, Iterator, Tuple

import numpy as np

from agent.util.errors import EdgeAgentError, InputError, MissingDependency

BINDINGS = ("cuda-python", "pycuda")
_CAPTURE_THREAD_LOCAL = 1  # CU_STREAM_CAPTURE_MODE_THREAD_LOCAL


class CudaError(EdgeAgentError):
    """A CUDA call failed (the message names the call and CUDA's error)."""


class CudaLayer(abc.ABC):
    """One device context's streams, buffers, copies, events and graphs."""

    name: str

    @abc.abstractmethod
    def active(self) -> "contextlib.AbstractContextManager[None]":
        """Make this layer's context current on the calling thread for the ``with`` block."""

    @abc.abstractmethod
    def device_name(self) -> str: ...

    @abc.abstractmethod
    def compute_capability(self) -> Tuple[int, int]: ...

    @abc.abstractmethod
    def create_stream(self) -> Any: ...

    @abc.abstractmethod
    def destroy_stream(self, stream: Any) -> None: ...

    @abc.abstractmethod
    def stream_handle(self, stream: Any) -> int:
        """The ``cudaStream_t`` as an int (what ``execute_async_v3`` takes)."""

    @abc.abstractmethod
    def synchronize(self, stream: Any) -> None: ...

    @abc.abstractmethod
    def alloc_device(self, nbytes: int) -> int: ...

    @abc.abstractmethod
    def free_device(self, ptr: int) -> None: ...

    @abc.abstractmethod
    def alloc_pinned(self, nbytes: int) -> np.ndarray:
        """A page-locked uint8 host array of ``nbytes`` (view it with the dtype you need)."""

    @abc.abstractmethod
    def free_pinned(self, array: np.ndarray) -> None: ...

    @abc.abstractmethod
    def copy_htod_async(self, dst: int, src: np.ndarray, stream: Any) -> None: ...

    @abc.abstractmethod
    def copy_dtoh_async(self, dst: np.ndarray, src: int, stream: Any) -> None: ...

    @abc.abstractmethod
    def copy_dtod_async(self, dst: int, src: int, nbytes: int, stream: Any) -> None: ...

    @abc.abstractmethod
    def create_event(self) -> Any: ...

    @abc.abstractmethod
    def destroy_event(self, event: Any) -> None: ...

    @abc.abstractmethod
    def record(self, event: Any, stream: Any) -> None: ...

    @abc.abstractmethod
    def elapsed_ms(self, start: Any, end: Any) -> float:
        """Milliseconds between two recorded events (both must have completed)."""

    @abc.abstractmethod
    def begin_capture(self, stream: Any) -> None: ...

    @abc.abstractmethod
    def end_capture(self, stream: Any) -> Any:
        """Stop capturing; returns an executable graph for ``launch_graph``."""

    @abc.abstractmethod
    def abort_capture(self, stream: Any) -> None:
        """Stop a capture whose work failed: the stream leaves capture mode and whatever graph the capture
        made is destroyed, uninstantiated. Does not raise for a capture CUDA has already invalidated."""

    @abc.abstractmethod
    def launch_graph(self, graph: Any, stream: Any) -> None: ...

    @abc.abstractmethod
    def destroy_graph(self, graph: Any) -> None:
        """Destroy what ``end_capture`` made: the executable graph and the graph it came from."""

    def close(self) -> None:
        """Release the context (buffers must have been freed by their owner)."""


class PycudaLayer(CudaLayer):
    """pycuda: what JetPack users usually have. Uses the device's primary context (as TensorRT does)."""

    name = "pycuda"

    def __init__(self, device: int = 0) -> None:
        import pycuda.driver as drv

        self._drv = drv
        drv.init()
        self._device = drv.Device(device)
        self._context = self._device.retain_primary_context()
        self._allocations: dict = {}
        self._libcuda: Any = None

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        self._context.push()
        try:
            yield
        finally:
            self._drv.Context.pop()

    def device_name(self) -> str:
        return str(self._device.name())

    def compute_capability(self) -> Tuple[int, int]:
        major, minor = self._device.compute_capability()
        return int(major), int(minor)

    def create_stream(self) -> Any:
        return self._drv.Stream()

    # pycuda's Stream and Event own their handles and destroy them (cuStreamDestroy, cuEventDestroy)
    # when the Python object is freed (pycuda src/cpp/cuda.hpp, class stream / class event destructors):
    # dropping the owner's last reference is the destruction.
    def destroy_stream(self, stream: Any) -> None:
        pass

    def stream_handle(self, stream: Any) -> int:
        return int(stream.handle)

    def synchronize(self, stream: Any) -> None:
        stream.synchronize()

    def alloc_device(self, nbytes: int) -> int:
        allocation = self._drv.mem_alloc(max(1, nbytes))
        self._allocations[int(allocation)] = allocation
        return int(allocation)

    def free_device(self, ptr: int) -> None:
        self._allocations.pop(ptr).free()

    def alloc_pinned(self, nbytes: int) -> np.ndarray:
        return self._drv.pagelocked_empty(max(1, nbytes), np.uint8)

    def free_pinned(self, array: np.ndarray) -> None:
        base: Any = array
        while getattr(base, "base", None) is not None and not hasattr(base, "free"):
            base = base.base
        if hasattr(base, "free"):
            base.free()

    def copy_htod_async(self, dst: int, src: np.ndarray, stream: Any) -> None:
        self._drv.memcpy_htod_async(dst, src, stream)

    def copy_dtoh_async(self, dst: np.ndarray, src: int, stream: Any) -> None:
        self._drv.memcpy_dtoh_async(dst, src, stream)

    def copy_dtod_async(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        self._drv.memcpy_dtod_async(dst, src, nbytes, stream)

    def create_event(self) -> Any:
        return self._drv.Event()

    def destroy_event(self, event: Any) -> None:
        pass

    def record(self, event: Any, stream: Any) -> None:
        event.record(stream)

    def elapsed_ms(self, start: Any, end: Any) -> float:
        return float(end.time_since(start))

    # pycuda binds no stream capture: the driver API's calls are reached through ctypes.
    def _raw(self, name: str, *args: Any) -> int:
        if self._libcuda is None:
            self._libcuda = ctypes.CDLL("libcuda.so.1")
        return int(getattr(self._libcuda, name)(*args))

    def _driver(self, name: str, *args: Any) -> None:
        code = self._raw(name, *args)
        if code != 0:
            raise CudaError(f"CUDA {name} failed: CUresult {code}")

    def begin_capture(self, stream: Any) -> None:
        self._driver("cuStreamBeginCapture_v2", ctypes.c_void_p(stream.handle), ctypes.c_int(_CAPTURE_THREAD_LOCAL))

    def end_capture(self, stream: Any) -> Any:
        graph, executable = ctypes.c_void_p(), ctypes.c_void_p()
        self._driver("cuStreamEndCapture", ctypes.c_void_p(stream.handle), ctypes.byref(graph))
        try:
            self._driver("cuGraphInstantiateWithFlags", ctypes.byref(executable), graph, ctypes.c_ulonglong(0))
        except CudaError:
            self._driver("cuGraphDestroy", graph)
            raise
        return graph, executable

    def abort_capture(self, stream: Any) -> None:
        graph = ctypes.c_void_p()
        # Its result is not checked: an invalidated capture answers CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, ends
        # the capture all the same and leaves the graph NULL (CUDA Driver API reference, cuStreamEndCapture).
        self._raw("cuStreamEndCapture", ctypes.c_void_p(stream.handle), ctypes.byref(graph))
        if graph.value:
            self._driver("cuGraphDestroy", graph)

    def launch_graph(self, graph: Any, stream: Any) -> None:
        self._driver("cuGraphLaunch", graph[1], ctypes.c_void_p(stream.handle))

    def destroy_graph(self, graph: Any) -> None:
        self._driver("cuGraphExecDestroy", graph[1])
        self._driver("cuGraphDestroy", graph[0])

    def close(self) -> None:
        self._context.detach()


class CudaPythonLayer(CudaLayer):
    """cuda-python's runtime API (``cuda.bindings.runtime``; ``cuda.cudart`` in older releases)."""

    name = "cuda-python"

    # Every runtime call below has the same parameters and the same (err, *values) result in cuda-python 11.8
    # (what JetPack 5's CUDA 11.4 takes) and in 12.x and 13.x, except where a comment says otherwise; read from
    # the released sources of 11.8.3 (cuda/cudart.pyx), 11.8.7, 12.9.10 and 13.0.3 (cuda/bindings/runtime.pyx),
    # listed in tests/fixtures/cuda_python/ and checked there by tests/tensorrt/test_cuda_python_api.py.
    def __init__(self, device: int = 0) -> None:
        # The module is chosen by what is importable: cuda.bindings.runtime in 11.8.7, 12.9.10 and 13.0.3
        # (cuda.cudart is a deprecated alias of it in the first two and gone in 13.0.3); only cuda.cudart in 11.8.3.
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
        self._rt = cudart
        self._device = device
        self._call("cudaSetDevice", device)
        self._props = self._call("cudaGetDeviceProperties", device)

    def _call(self, name: str, *args: Any) -> Any:
        result = getattr(self._rt, name)(*args)
        err, values = result[0], result[1:]
        if err != self._rt.cudaError_t.cudaSuccess:
            raise CudaError(f"CUDA {name} failed: {getattr(err, 'name', err)}")
        return values[0] if len(values) == 1 else (values or None)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        self._call("cudaSetDevice", self._device)
        yield

    def device_name(self) -> str:
        name = self._props.name
        return (name.split(b"\0", 1)[0].decode() if isinstance(name, bytes) else str(name)).strip()

    def compute_capability(self) -> Tuple[int, int]:
        return int(self._props.major), int(self._props.minor)

    def create_stream(self) -> Any:
        return self._call("cudaStreamCreateWithFlags", self._rt.cudaStreamNonBlocking)

    def destroy_stream(self, stream: Any) -> None:
        self._call("cudaStreamDestroy", stream)

    def stream_handle(self, stream: Any) -> int:
        return int(stream)

    def synchronize(self, stream: Any) -> None:
        self._call("cudaStreamSynchronize", stream)

    def alloc_device(self, nbytes: int) -> int:
        return int(self._call("cudaMalloc", max(1, nbytes)))

    def free_device(self, ptr: int) -> None:
        self._call("cudaFree", ptr)

    def alloc_pinned(self, nbytes: int) -> np.ndarray:
        nbytes = max(1, nbytes)
        ptr = int(self._call("cudaHostAlloc", nbytes, self._rt.cudaHostAllocDefault))
        return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(ptr))

    def free_pinned(self, array: np.ndarray) -> None:
        self._call("cudaFreeHost", array.ctypes.data)

    def _copy(self, dst: int, src: int, nbytes: int, kind: str, stream: Any) -> None:
        self._call("cudaMemcpyAsync", dst, src, nbytes, getattr(self._rt.cudaMemcpyKind, kind), stream)

    def copy_htod_async(self, dst: int, src: np.ndarray, stream: Any) -> None:
        self._copy(dst, src.ctypes.data, src.nbytes, "cudaMemcpyHostToDevice", stream)

    def copy_dtoh_async(self, dst: np.ndarray, src: int, stream: Any) -> None:
        self._copy(dst.ctypes.data, src, dst.nbytes, "cudaMemcpyDeviceToHost", stream)

    def copy_dtod_async(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        self._copy(dst, src, nbytes, "cudaMemcpyDeviceToDevice", stream)

    def create_event(self) -> Any:
        return self._call("cudaEventCreate")

    def destroy_event(self, event: Any) -> None:
        self._call("cudaEventDestroy", event)

    def record(self, event: Any, stream: Any) -> None:
        self._call("cudaEventRecord", event, stream)

    def elapsed_ms(self, start: Any, end: Any) -> float:
        return float(self._call("cudaEventElapsedTime", start, end))

    def begin_capture(self, stream: Any) -> None:
        self._call("cudaStreamBeginCapture", stream, self._rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal)

    def end_capture(self, stream: Any) -> Any:
        graph = self._call("cudaStreamEndCapture", stream)
        # cudaGraphInstantiate differs: (graph, pLogBuffer, bufferSize) -> (err, graphExec, errorNode) in
        # cuda-python 11.8.3 (cuda/cudart.pyx) and 11.8.7, (graph, flags) -> (err, graphExec) in 12.9.10 and 13.0.3
        # (cuda/bindings/runtime.pyx). cudaGraphInstantiateWithFlags(graph, flags) -> (err, graphExec) is the same
        # in all four (the CUDA runtime has it from 11.4, JetPack 5's CUDA), so that one is called.
        try:
            executable = self._call("cudaGraphInstantiateWithFlags", graph, 0)
        except CudaError:
            self._call("cudaGraphDestroy", graph)
            raise
        return graph, executable

    def abort_capture(self, stream: Any) -> None:
        # Not through _call: an invalidated capture answers cudaErrorStreamCaptureInvalidated, ends the capture all
        # the same, and its graph is NULL: (err, None) in cuda-python 12.9.10 and 13.0.3, (err, <NULL cudaGraph_t>)
        # in 11.8.3 and 11.8.7 (cudaStreamEndCapture in the sources above; its docstring: "If capture was
        # invalidated ... then a NULL graph will be returned").
        graph = self._rt.cudaStreamEndCapture(stream)[1]
        if graph is not None and int(graph):
            self._call("cudaGraphDestroy", graph)

    def launch_graph(self, graph: Any, stream: Any) -> None:
        self._call("cudaGraphLaunch", graph[1], stream)

    def destroy_graph(self, graph: Any) -> None:
        self._call("cudaGraphExecDestroy", graph[1])
        self._call("cudaGraphDestroy", graph[0])


_LAYERS = {"cuda-python": CudaPythonLayer, "pycuda": PycudaLayer}
_MODULES = {"cuda-python": "cuda", "pycuda": "pycuda"}


def open_cuda(binding: str = "auto", device: int = 0) -> CudaLayer:
    """The CUDA layer for ``binding`` (auto: cuda-python, then pycuda); MissingDependency if none."""
    if binding not in ("auto",) + BINDINGS:
        raise InputError(f"backend.tensorrt.cuda_binding: expected auto, {', '.join(BINDINGS)}, got {binding!r}")
    candidates = BINDINGS if binding == "auto" else (binding,)
    failures = []
    for name in candidates:
        try:
            return _LAYERS[name](device)
        except ImportError as exc:
            failures.append(f"{name} ({exc})")
    raise MissingDependency(
        f"no CUDA Python binding is importable ({'; '.join(failures)}): on JetPack install one with "
        "`pip install cuda-python` (matching the CUDA version) or `pip install pycuda`"
    )
