"""Running a deserialized TensorRT engine: one execution context and one CUDA stream per instance.

Per call: feeds are copied into pinned host buffers, copied to device buffers asynchronously,
``execute_async_v3`` runs (or a CUDA graph captured from it is replayed), outputs come back
asynchronously, and CUDA events around each stage give ``h2d``, ``compute`` and ``d2h`` in ms,
the split trtexec reports. Only names present in every release from 8.5 to 11 are used:
``num_io_tensors``, ``get_tensor_name/mode/shape/dtype``, ``create_execution_context``,
``set_input_shape``, context ``get_tensor_shape``, ``set_tensor_address``, ``execute_async_v3``,
and ``IOutputAllocator`` / ``set_output_allocator`` (bound from 8.5 on: tests/tensorrt/api/) for
outputs whose shape only the run decides (NonZero, NonMaxSuppression: -1 in the context's shape).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple

import numpy as np

from agent.backends.base import Arrays, Engine, StageTimes, TensorInfo
from agent.backends.tensorrt.cuda import CudaLayer
from agent.util.errors import EdgeAgentError, InputError

# TensorRT DataType member name -> numpy dtype name (types numpy cannot hold are refused on load).
DTYPES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "INT8": "int8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
    "UINT8": "uint8",
}


class _Buffer:
    """A pinned host array and a device allocation of the same capacity (bytes)."""

    def __init__(self, cuda: CudaLayer, nbytes: int) -> None:
        self.nbytes = nbytes
        self.host = cuda.alloc_pinned(nbytes)
        try:
            self.device = cuda.alloc_device(nbytes)
        except BaseException:
            cuda.free_pinned(self.host)
            raise

    def free(self, cuda: CudaLayer) -> None:
        cuda.free_pinned(self.host)
        cuda.free_device(self.device)


def _dims(shape: Any) -> Tuple[int, ...]:
    return tuple(int(d) for d in shape)


def make_output_allocator(trt: Any, reallocate: Callable[[str, int], int], shapes: Dict[str, Tuple[int, ...]]) -> Any:
    """An ``IOutputAllocator`` handing out the engine's device buffers and recording the shapes TensorRT reports.

    As Polygraphy's runner does (tools/Polygraphy/polygraphy/backend/trt/runner.py, v10.3.0, OutputAllocator):
    ``reallocate_output`` and ``notify_shape``. On 10.x and 11.x TensorRT calls ``reallocate_output_async``,
    which falls back to ``reallocate_output`` when Python does not override it (python/src/infer/pyCore.cpp,
    v10.3.0 l.537-550; v11.1 l.631-644).
    """

    class OutputAllocator(trt.IOutputAllocator):
        def __init__(self) -> None:
            trt.IOutputAllocator.__init__(self)

        def reallocate_output(self, tensor_name: str, memory: int, size: int, alignment: int) -> int:
            return reallocate(str(tensor_name), int(size))

        def notify_shape(self, tensor_name: str, shape: Any) -> None:
            shapes[str(tensor_name)] = _dims(shape)

    return OutputAllocator()


class TensorRTEngine(Engine):
    """A loaded engine bound to one CUDA layer (context), stream and set of buffers."""

    def __init__(
        self, engine: Any, cuda: CudaLayer, info: Dict[str, Any], cuda_graph: bool = False, trt: Any = None
    ) -> None:
        self.cuda = cuda
        self.info = info
        self._engine = engine
        self._trt = trt
        self._allocator: Any = None
        self._allocated: Set[str] = set()  # outputs handed to the output allocator
        self._reported: Dict[str, Tuple[int, ...]] = {}  # their shapes, as notify_shape gave them
        self._use_graph = cuda_graph
        self._graph: Any = None
        self._bound: Optional[Tuple[Any, ...]] = None
        self._buffers: Dict[str, _Buffer] = {}
        self._dtypes: Dict[str, np.dtype] = {}
        self.inputs: List[TensorInfo] = []
        self.outputs: List[TensorInfo] = []
        self._stream: Any = None
        self._events: List[Any] = []
        try:
            self._describe(engine)
            with cuda.active():
                self._context = engine.create_execution_context()
                if self._context is None:
                    raise EdgeAgentError("TensorRT could not create an execution context (out of device memory?)")
                self._stream = cuda.create_stream()
                for _ in range(4):
                    self._events.append(cuda.create_event())
        except BaseException:  # this instance owns the layer: what was made before the failure goes with it
            with cuda.active():
                self._release()
            cuda.close()
            raise

    def _describe(self, engine: Any) -> None:
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            dtype_name = engine.get_tensor_dtype(name).name
            if dtype_name not in DTYPES:
                raise EdgeAgentError(f"engine tensor {name!r} has type {dtype_name}, which numpy cannot hold")
            self._dtypes[name] = np.dtype(DTYPES[dtype_name])
            shape = tuple(d if d >= 0 else None for d in _dims(engine.get_tensor_shape(name)))
            tensor = TensorInfo(name, shape, DTYPES[dtype_name])
            (self.inputs if engine.get_tensor_mode(name).name == "INPUT" else self.outputs).append(tensor)

    def _buffer(self, name: str, nbytes: int) -> _Buffer:
        current = self._buffers.get(name)
        if current is None or current.nbytes < nbytes:
            if current is not None:
                del self._buffers[name]  # gone before the new allocation, which may fail: never freed twice
                current.free(self.cuda)
            current = self._buffers[name] = _Buffer(self.cuda, nbytes)
        return current

    def _bind(self, feeds: Mapping[str, np.ndarray]) -> Dict[str, Tuple[int, ...]]:
        """Stage the feeds in pinned memory, set shapes and addresses; returns the output shapes."""
        missing = [t.name for t in self.inputs if t.name not in feeds]
        if missing:
            raise InputError(f"engine inputs {missing} were not fed (it takes {[t.name for t in self.inputs]})")
        for tensor in self.inputs:
            array = np.asarray(feeds[tensor.name])
            want = self._dtypes[tensor.name]
            if array.dtype != want and not (array.dtype.kind == "f" and want.kind == "f"):
                raise InputError(f"input {tensor.name!r}: engine takes {want}, got {array.dtype}")
            array = np.ascontiguousarray(array, dtype=want)
            if len(array.shape) != len(tensor.shape) or any(
                d is not None and d != s for d, s in zip(tensor.shape, array.shape)
            ):
                raise InputError(f"input {tensor.name!r}: engine takes {list(tensor.shape)}, got {list(array.shape)}")
            if not self._context.set_input_shape(tensor.name, array.shape):
                raise InputError(
                    f"input {tensor.name!r}: shape {list(array.shape)} is outside the engine's optimization profile"
                )
            buffer = self._buffer(tensor.name, array.nbytes)
            buffer.host[: array.nbytes] = array.reshape(-1).view(np.uint8)
        shapes = {t.name: tuple(np.asarray(feeds[t.name]).shape) for t in self.inputs}
        for tensor in self.outputs:
            shape = _dims(self._context.get_tensor_shape(tensor.name))
            if any(d < 0 for d in shape):  # data-dependent: the run decides, the output allocator provides
                self._allocate_at_run(tensor.name)
                continue
            shapes[tensor.name] = shape
            self._buffer(tensor.name, int(np.prod(shape)) * self._dtypes[tensor.name].itemsize)
        binding = tuple((name, shapes[name], self._buffers[name].device) for name in sorted(shapes))
        if binding != self._bound:
            for name, _, ptr in binding:
                self._context.set_tensor_address(name, ptr)
            self._drop_graph()  # captured with the old addresses: re-captured on the next run
            self._bound = binding
        return shapes

    def _allocate_at_run(self, name: str) -> None:
        if name in self._allocated:
            return
        if self._allocator is None:
            if self._trt is None:
                raise EdgeAgentError(f"engine output {name!r} has a data-dependent shape and no output allocator")
            self._allocator = make_output_allocator(
                self._trt, lambda tensor, size: self._buffer(tensor, size).device, self._reported
            )
        if not self._context.set_output_allocator(name, self._allocator):
            raise EdgeAgentError(f"TensorRT refused an output allocator for the data-dependent output {name!r}")
        self._allocated.add(name)
        # The allocator picks the address during each run, which a replayed CUDA graph could not follow.
        self._use_graph = False

    def _drop_graph(self) -> None:
        if self._graph is not None:
            graph, self._graph = self._graph, None
            self.cuda.destroy_graph(graph)

    def _enqueue(self) -> None:
        stream = self._stream
        if self._graph is not None:
            self.cuda.launch_graph(self._graph, stream)
            return
        if not self._context.execute_async_v3(self.cuda.stream_handle(stream)):
            raise EdgeAgentError("TensorRT execute_async_v3 failed (see the TensorRT log)")
        if self._use_graph:
            # Captured after one plain run, as TensorRT asks: the first enqueue may allocate.
            self.cuda.synchronize(stream)
            self.cuda.begin_capture(stream)
            try:
                ok = self._context.execute_async_v3(self.cuda.stream_handle(stream))
            except BaseException:
                self.cuda.abort_capture(stream)  # the stream leaves capture mode; nothing is instantiated
                raise
            if not ok:
                self.cuda.abort_capture(stream)
                raise EdgeAgentError(
                    "TensorRT execute_async_v3 failed during CUDA graph capture (see the TensorRT log)"
                )
            self._graph = self.cuda.end_capture(stream)

    def infer_timed(self, feeds: Mapping[str, np.ndarray]) -> Tuple[Arrays, StageTimes]:
        cuda, stream, events = self.cuda, self._stream, self._events
        with cuda.active():
            shapes = self._bind(feeds)
            cuda.record(events[0], stream)
            for tensor in self.inputs:
                buffer = self._buffers[tensor.name]
                nbytes = int(np.prod(shapes[tensor.name])) * self._dtypes[tensor.name].itemsize
                cuda.copy_htod_async(buffer.device, buffer.host[:nbytes], stream)
            cuda.record(events[1], stream)
            self._enqueue()
            cuda.record(events[2], stream)
            if self._allocated:
                cuda.synchronize(stream)  # the run has reported the data-dependent shapes
                shapes.update({name: self._reported[name] for name in self._allocated})
            for tensor in self.outputs:
                buffer = self._buffers[tensor.name]
                nbytes = int(np.prod(shapes[tensor.name])) * self._dtypes[tensor.name].itemsize
                cuda.copy_dtoh_async(buffer.host[:nbytes], buffer.device, stream)
            cuda.record(events[3], stream)
            cuda.synchronize(stream)
            times = {
                "h2d": cuda.elapsed_ms(events[0], events[1]),
                "compute": cuda.elapsed_ms(events[1], events[2]),
                "d2h": cuda.elapsed_ms(events[2], events[3]),
            }
        outputs = {}
        for tensor in self.outputs:
            dtype, shape = self._dtypes[tensor.name], shapes[tensor.name]
            nbytes = int(np.prod(shape)) * dtype.itemsize
            outputs[tensor.name] = self._buffers[tensor.name].host[:nbytes].view(dtype).reshape(shape).copy()
        return outputs, times

    def infer(self, feeds: Mapping[str, np.ndarray]) -> Arrays:
        return self.infer_timed(feeds)[0]

    def _release(self) -> None:
        """Destroy the graph, events, stream and buffers this instance holds (each once)."""
        self._drop_graph()
        while self._events:
            self.cuda.destroy_event(self._events.pop())
        if self._stream is not None:
            stream, self._stream = self._stream, None
            self.cuda.destroy_stream(stream)
        while self._buffers:
            self._buffers.popitem()[1].free(self.cuda)

    def close(self) -> None:
        if self._engine is None:
            return
        with self.cuda.active():
            self.cuda.synchronize(self._stream)
            self._release()
        self._context = self._engine = None
        self.cuda.close()
