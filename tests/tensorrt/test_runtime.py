"""The engine runner's input checks and buffer handling, and the choice of CUDA binding."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, List

import numpy as np
import pytest

from agent.backends.base import BuildRequest
from agent.backends.tensorrt.cuda import CudaError, open_cuda
from agent.util.errors import EdgeAgentError, InputError, MissingDependency

from .conftest import use_double
from .host_cuda import HostCudaLayer


@pytest.fixture
def engine_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, qdq_path: str) -> str:
    use_double(monkeypatch, "8.6.1")
    from agent.backends.tensorrt.backend import TensorRTBackend

    path = str(tmp_path / "e.engine")
    TensorRTBackend(cuda_factory=HostCudaLayer).build(
        BuildRequest(qdq_path, "int8", {"x": (8, 16)}, {"build_timeout_s": 60}), path
    )
    return path


def _load(path: str, options: Any, layer: Callable[[str], HostCudaLayer] = HostCudaLayer) -> Any:
    from agent.backends.tensorrt.backend import TensorRTBackend

    return TensorRTBackend(cuda_factory=layer).load(path, options)


def _all_released(layer: HostCudaLayer) -> bool:
    return not layer.live and not layer.memory and not layer.pinned and not layer.in_capture and layer.closed


@pytest.fixture
def engine(engine_path: str) -> Any:
    loaded = _load(engine_path, {})
    yield loaded
    loaded.close()


def test_feeds_are_checked_before_anything_runs(engine: Any) -> None:
    assert [(t.name, t.shape, t.dtype) for t in engine.inputs] == [("x", (None, 16), "float32")]
    with pytest.raises(InputError, match=r"engine inputs \['x'\] were not fed"):
        engine.infer({"z": np.zeros((1, 16), np.float32)})
    with pytest.raises(InputError, match="engine takes float32, got int64"):
        engine.infer({"x": np.zeros((1, 16), np.int64)})
    with pytest.raises(InputError, match=r"engine takes \[None, 16\], got \[1, 15\]"):
        engine.infer({"x": np.zeros((1, 15), np.float32)})
    assert not engine.cuda.calls  # nothing reached the stream


def test_buffers_grow_with_the_batch_and_float64_is_cast(engine: Any) -> None:
    small = engine.infer({"x": np.ones((2, 16))})  # float64 feed, cast to the engine's float32
    assert small["y"].shape == (2, 4) and small["y"].dtype == np.float32
    first = engine._buffers["x"].device
    big = engine.infer({"x": np.ones((8, 16), np.float32)})
    assert engine._buffers["x"].device != first and engine._buffers["x"].nbytes == 8 * 16 * 4
    np.testing.assert_allclose(big["y"][:2], small["y"])  # same rows, same answers
    assert ("htod", 8 * 16 * 4) in engine.cuda.calls and ("dtoh", 8 * 4 * 4) in engine.cuda.calls


def test_cuda_binding_choice() -> None:
    with pytest.raises(InputError, match="cuda_binding: expected auto, cuda-python, pycuda, got 'cupy'"):
        open_cuda("cupy")
    import importlib.util

    if importlib.util.find_spec("cuda") is None:
        with pytest.raises(MissingDependency, match="pip install cuda-python"):
            open_cuda("cuda-python")


class _FailingInCapture:
    """The engine's execution context, failing ``execute_async_v3`` only while the stream captures, as TensorRT does
    for work that cannot be captured (it returns False and logs why; a Python error can also come out of it)."""

    def __init__(self, context: Any, cuda: HostCudaLayer, how: str) -> None:
        self.context, self._cuda, self._how = context, cuda, how

    def __getattr__(self, name: str) -> Any:
        return getattr(self.context, name)

    def execute_async_v3(self, stream: int) -> bool:
        if not self._cuda.in_capture:
            return bool(self.context.execute_async_v3(stream))
        if self._how == "raises":
            raise RuntimeError("enqueue failed in capture")
        return False


@pytest.mark.parametrize("how", ["raises", "returns False"])
def test_a_failed_capture_is_ended_and_leaves_no_graph(engine_path: str, how: str) -> None:
    engine = _load(engine_path, {"cuda_graph": True})
    cuda, feeds = engine.cuda, {"x": np.ones((2, 16), np.float32)}
    engine._context = _FailingInCapture(engine._context, cuda, how)
    error = RuntimeError if how == "raises" else EdgeAgentError
    with pytest.raises(error, match="enqueue failed in capture|failed during CUDA graph capture"):
        engine.infer(feeds)
    assert cuda.capturing == ["begin", "abort"] and not cuda.in_capture  # ended, nothing instantiated
    assert cuda.created["graph"] == 0
    engine._context = engine._context.context  # TensorRT can capture again: the same stream still works
    out = engine.infer(feeds)
    assert out["y"].shape == (2, 4) and cuda.capturing == ["begin", "abort", "begin", "end"]
    engine.close()
    assert _all_released(cuda) and cuda.destroyed == cuda.created


class _SmallDevice(HostCudaLayer):
    """A device whose allocations above 256 bytes fail, as cudaMalloc does when memory runs out."""

    def alloc_device(self, nbytes: int) -> int:
        if nbytes > 256:
            raise CudaError("CUDA cudaMalloc failed: cudaErrorMemoryAllocation")
        return super().alloc_device(nbytes)


def test_a_failed_buffer_growth_frees_each_buffer_once(engine_path: str) -> None:
    engine = _load(engine_path, {}, _SmallDevice)
    engine.infer({"x": np.ones((2, 16), np.float32)})  # 128 bytes in
    with pytest.raises(CudaError, match="cudaErrorMemoryAllocation"):
        engine.infer({"x": np.ones((8, 16), np.float32)})  # 512 bytes: the old buffer is freed, the new one fails
    engine.close()  # freed the old input buffer again before the fix
    assert _all_released(engine.cuda)


class _OutOfEvents(HostCudaLayer):
    """A device that runs out of event resources after two events."""

    made: List[HostCudaLayer] = []

    def __init__(self, binding: str = "auto") -> None:
        super().__init__(binding)
        self.made.append(self)

    def create_event(self) -> Any:
        if self.created["event"] == 2:
            raise CudaError("CUDA cudaEventCreate failed: cudaErrorMemoryAllocation")
        return super().create_event()


def test_a_failed_load_destroys_what_it_made(engine_path: str) -> None:
    with pytest.raises(CudaError, match="cudaEventCreate"):
        _load(engine_path, {}, _OutOfEvents)
    layer = _OutOfEvents.made.pop()
    assert layer.created == {"stream": 1, "event": 2} and _all_released(layer)
