"""A host-memory stand-in for the CUDA buffer layer, for CI machines without a GPU.

It implements the same small interface as agent.backends.tensorrt.cuda's layers with ordinary host
memory: "device" pointers are addresses of numpy arrays, copies are memmoves done at once, and
an event records the host clock when it is recorded. What it proves: the runtime's bookkeeping
(which buffer goes to which tensor address, sizes, shapes, dtypes, copy directions, re-binding,
graph capture and replay order, stage timing wiring), and lifetimes: it counts the streams,
events and graphs created and destroyed (``live``, ``created``, ``destroyed``) and refuses to
destroy one twice; ``memory`` and ``pinned`` hold the live device and pinned buffers, and freeing
one twice fails. A stream in capture mode (``in_capture``) refuses to be synchronized, as CUDA
does (cudaErrorStreamCaptureUnsupported). What it cannot prove: asynchrony, pinned memory, or
anything about a real device; tests/gpu/ runs the real layers for that.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections import Counter
from typing import Any, Dict, Iterator, List, Set, Tuple

import numpy as np

from agent.backends.tensorrt.cuda import CudaLayer


class HostCudaLayer(CudaLayer):
    name = "host-stand-in"

    def __init__(self, binding: str = "auto") -> None:
        self.binding = binding
        self.memory: Dict[int, np.ndarray] = {}
        self.pinned: Dict[int, np.ndarray] = {}
        self.calls: List[Tuple[str, Any]] = []
        self.capturing: List[str] = []
        self.in_capture: Set[int] = set()
        self.closed = False
        self.created: Counter = Counter()
        self.destroyed: Counter = Counter()
        self.live: Dict[int, Tuple[str, Any]] = {}

    def _make(self, kind: str, handle: Any) -> Any:
        self.created[kind] += 1
        self.live[id(handle)] = (kind, handle)
        return handle

    def _destroy(self, kind: str, handle: Any) -> None:
        if self.live.get(id(handle), (None,))[0] != kind:
            raise AssertionError(f"destroying a {kind} that is not live (destroyed twice, or never created)")
        del self.live[id(handle)]
        self.destroyed[kind] += 1

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        yield

    def device_name(self) -> str:
        return "host stand-in"

    def compute_capability(self) -> Tuple[int, int]:
        return (0, 0)

    def create_stream(self) -> Any:
        return self._make("stream", object())

    def destroy_stream(self, stream: Any) -> None:
        self._destroy("stream", stream)

    def stream_handle(self, stream: Any) -> int:
        return id(stream)

    def synchronize(self, stream: Any) -> None:
        if id(stream) in self.in_capture:
            raise AssertionError("synchronize on a stream in capture mode (cudaErrorStreamCaptureUnsupported)")
        self.calls.append(("sync", None))

    def alloc_device(self, nbytes: int) -> int:
        array = np.zeros(max(1, nbytes), np.uint8)
        self.memory[array.ctypes.data] = array
        return array.ctypes.data

    def free_device(self, ptr: int) -> None:
        del self.memory[ptr]

    def alloc_pinned(self, nbytes: int) -> np.ndarray:
        array = np.zeros(max(1, nbytes), np.uint8)
        self.pinned[array.ctypes.data] = array
        return array

    def free_pinned(self, array: np.ndarray) -> None:
        del self.pinned[array.ctypes.data]

    def _check(self, ptr: int, nbytes: int) -> None:
        base = max((p for p in self.memory if p <= ptr), default=None)
        if base is None or ptr + nbytes > base + self.memory[base].nbytes:
            raise AssertionError(f"copy of {nbytes} bytes at {ptr:#x} is outside every device allocation")

    def copy_htod_async(self, dst: int, src: np.ndarray, stream: Any) -> None:
        self._check(dst, src.nbytes)
        ctypes.memmove(dst, src.ctypes.data, src.nbytes)
        self.calls.append(("htod", src.nbytes))

    def copy_dtoh_async(self, dst: np.ndarray, src: int, stream: Any) -> None:
        self._check(src, dst.nbytes)
        ctypes.memmove(dst.ctypes.data, src, dst.nbytes)
        self.calls.append(("dtoh", dst.nbytes))

    def copy_dtod_async(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        self._check(dst, nbytes)
        self._check(src, nbytes)
        ctypes.memmove(dst, src, nbytes)

    def create_event(self) -> Any:
        return self._make("event", [0.0])

    def destroy_event(self, event: Any) -> None:
        self._destroy("event", event)

    def record(self, event: Any, stream: Any) -> None:
        from time import perf_counter

        event[0] = perf_counter()

    def elapsed_ms(self, start: Any, end: Any) -> float:
        return (end[0] - start[0]) * 1000.0

    def begin_capture(self, stream: Any) -> None:
        assert id(stream) not in self.in_capture, "the stream is already capturing"
        self.in_capture.add(id(stream))
        self.capturing.append("begin")

    def end_capture(self, stream: Any) -> Any:
        self.in_capture.remove(id(stream))
        self.capturing.append("end")
        return self._make("graph", ["graph"])

    def abort_capture(self, stream: Any) -> None:
        self.in_capture.remove(id(stream))
        self.capturing.append("abort")

    def launch_graph(self, graph: Any, stream: Any) -> None:
        self.calls.append(("graph", graph[0]))

    def destroy_graph(self, graph: Any) -> None:
        self._destroy("graph", graph)

    def close(self) -> None:
        self.closed = True
