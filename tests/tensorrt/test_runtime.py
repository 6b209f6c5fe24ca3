"""The engine runner's input checks and buffer handling, and the choice of CUDA binding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.backends.base import BuildRequest
from agent.backends.tensorrt.cuda import open_cuda
from agent.util.errors import InputError, MissingDependency

from .conftest import use_double
from .host_cuda import HostCudaLayer


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, qdq_path: str) -> Any:
    use_double(monkeypatch, "8.6.1")
    from agent.backends.tensorrt.backend import TensorRTBackend

    backend = TensorRTBackend(cuda_factory=HostCudaLayer)
    backend.build(BuildRequest(qdq_path, "int8", {"x": (8, 16)}, {"build_timeout_s": 60}), str(tmp_path / "e.engine"))
    loaded = backend.load(str(tmp_path / "e.engine"), {})
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
