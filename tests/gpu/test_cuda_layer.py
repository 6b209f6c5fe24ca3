"""The CUDA buffer layer on a real GPU, with each binding that is importable (skipped without a GPU).

The engine is stood in for by work on the engine's own stream between its device buffers: a
device-to-device copy, or (with CuPy) a kernel computing 2x+1, so a wrong address, a missing
synchronisation or a copy in the wrong direction shows up as wrong numbers.
"""

from __future__ import annotations

import json
import os
import time
from types import SimpleNamespace
from typing import Any, Iterator

import numpy as np
import pytest

from agent.backends.tensorrt.cuda import BINDINGS, CudaError, CudaLayer, open_cuda
from agent.backends.tensorrt.runtime import TensorRTEngine
from agent.util.errors import MissingDependency

pytestmark = pytest.mark.gpu


@pytest.fixture(params=BINDINGS)
def layer(request: pytest.FixtureRequest) -> Iterator[CudaLayer]:
    try:
        cuda = open_cuda(request.param)
    except (MissingDependency, CudaError) as exc:
        pytest.skip(f"{request.param}: {exc}")
    except Exception as exc:  # pycuda raises its own LogicError/RuntimeError without a driver
        pytest.skip(f"{request.param}: no usable CUDA device ({exc})")
    yield cuda


def _record(name: str, value: Any) -> None:
    """Append a measured fact to $GPU_RESULTS (a JSON-lines file) when the run asks for it."""
    path = os.environ.get("GPU_RESULTS")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"test": name, **value}) + "\n")


def test_round_trip_through_device_copies(layer: CudaLayer) -> None:
    data = np.arange(1 << 20, dtype=np.float32) * 0.5 - 7.0
    with layer.active():
        stream = layer.create_stream()
        host_in = layer.alloc_pinned(data.nbytes)
        host_out = layer.alloc_pinned(data.nbytes)
        host_out[:] = 0
        host_in[:] = data.view(np.uint8)
        a, b = layer.alloc_device(data.nbytes), layer.alloc_device(data.nbytes)
        events = [layer.create_event() for _ in range(4)]
        layer.record(events[0], stream)
        layer.copy_htod_async(a, host_in, stream)
        layer.record(events[1], stream)
        layer.copy_dtod_async(b, a, data.nbytes, stream)
        layer.record(events[2], stream)
        layer.copy_dtoh_async(host_out, b, stream)
        layer.record(events[3], stream)
        layer.synchronize(stream)
        times = [layer.elapsed_ms(events[i], events[i + 1]) for i in range(3)]
        np.testing.assert_array_equal(host_out.view(np.float32), data)
        for ptr in (a, b):
            layer.free_device(ptr)
        for array in (host_in, host_out):
            layer.free_pinned(array)
    # 4 MiB over PCIe/NVLink-C2C in pinned memory: well under 100 ms, and events advance.
    assert all(0.0 < t < 100.0 for t in times), times
    _record(
        "round_trip_4MiB",
        {
            "binding": layer.name,
            "device": layer.device_name(),
            "cc": layer.compute_capability(),
            "h2d_ms": times[0],
            "d2d_ms": times[1],
            "d2h_ms": times[2],
        },
    )


class StandInEngine:
    """The ICudaEngine/IExecutionContext names the runtime uses, doing 2x+1 (or a copy) on the GPU."""

    def __init__(self, layer: CudaLayer, kernel: bool, features: tuple = (256,)) -> None:
        self.layer, self.kernel, self.features = layer, kernel, features
        self.num_io_tensors = 2
        self.addresses: dict = {}
        self.shape = (0,)
        self.enqueues = 0

    def get_tensor_name(self, index: int) -> str:
        return ("x", "y")[index]

    def get_tensor_mode(self, name: str) -> Any:
        return SimpleNamespace(name="INPUT" if name == "x" else "OUTPUT")

    def get_tensor_dtype(self, name: str) -> Any:
        return SimpleNamespace(name="FLOAT")

    def get_tensor_shape(self, name: str) -> Any:
        return (-1,) + self.features if self.shape == (0,) else self.shape

    def create_execution_context(self) -> "StandInEngine":
        return self

    def set_input_shape(self, name: str, shape: Any) -> bool:
        self.shape = tuple(shape)
        return True

    def set_tensor_address(self, name: str, ptr: int) -> None:
        self.addresses[name] = ptr

    def execute_async_v3(self, stream: int) -> bool:
        self.enqueues += 1
        nbytes = int(np.prod(self.shape)) * 4
        if not self.kernel:
            self.layer.copy_dtod_async(self.addresses["y"], self.addresses["x"], nbytes, self._stream)
            return True
        import cupy

        with cupy.cuda.ExternalStream(stream):

            def view(ptr: int) -> Any:
                memory = cupy.cuda.MemoryPointer(cupy.cuda.UnownedMemory(ptr, nbytes, self), 0)
                return cupy.ndarray(self.shape, cupy.float32, memory)

            cupy.multiply(view(self.addresses["x"]), 2.0, out=view(self.addresses["y"]))
            cupy.add(view(self.addresses["y"]), 1.0, out=view(self.addresses["y"]))
        return True


@pytest.mark.parametrize("kernel", [False, True], ids=["device-copy", "cupy-kernel"])
@pytest.mark.parametrize("graph", [False, True], ids=["stream", "cuda-graph"])
def test_engine_runtime_data_flow_and_stage_times(layer: CudaLayer, kernel: bool, graph: bool) -> None:
    if kernel:
        pytest.importorskip("cupy")
    stand_in = StandInEngine(layer, kernel)
    engine = TensorRTEngine(stand_in, layer, {}, cuda_graph=graph)
    stand_in._stream = engine._stream
    rng = np.random.default_rng(0)
    runs = []
    for batch in (4, 4, 4, 8, 8):  # a shape change re-binds addresses (and re-captures the graph)
        x = rng.standard_normal((batch, 256)).astype(np.float32)
        start = time.perf_counter()
        outputs, times = engine.infer_timed({"x": x})
        runs.append((times, (time.perf_counter() - start) * 1000.0))
        expected = 2.0 * x + 1.0 if kernel else x
        np.testing.assert_allclose(outputs["y"], expected, rtol=1e-6)
    for times, wall_ms in runs:
        assert set(times) == {"h2d", "compute", "d2h"}
        assert all(t >= 0.0 for t in times.values()) and sum(times.values()) <= wall_ms
    if graph:
        # per shape: one plain enqueue, one captured; replays do not call execute_async_v3
        assert stand_in.enqueues == 4, stand_in.enqueues
    engine.close()
    _record(
        "engine_runtime",
        {
            "binding": layer.name,
            "kernel": kernel,
            "cuda_graph": graph,
            "stage_ms_last": runs[-1][0],
            "wall_ms_last": runs[-1][1],
        },
    )
