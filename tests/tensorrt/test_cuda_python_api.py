"""CudaPythonLayer against the runtime API of each cuda-python release in tests/fixtures/cuda_python/.

For each release, a stand-in runtime module is made from the signatures read from that release's
source (not from the layer): only the functions, enum members, constants and struct fields the
release has, each function taking exactly its parameters (an enum-typed one only a member of that
enum, as the real body reads ``.value``) and answering ``(err, *values)`` with the release's arity.
The layer is then driven through every method of CudaLayer. JetPack 5 (CUDA 11.4) takes 11.8.
"""

from __future__ import annotations

import ctypes
import enum
import json
import sys
import types
from pathlib import Path
from typing import Any, Dict, List, Set

import numpy as np
import pytest

from agent.backends.tensorrt.cuda import CudaError, CudaLayer, CudaPythonLayer

FIXTURE = Path(__file__).parents[1] / "fixtures" / "cuda_python" / "signatures.json"
RELEASES: Dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))


class _Handle:
    """An opaque handle as cuda-python gives (cudaStream_t, cudaGraph_t, ...): ``int()`` is its address."""

    def __init__(self, kind: str, address: int) -> None:
        self.kind, self.address = kind, address

    def __int__(self) -> int:
        return self.address


class FakeRuntime(types.ModuleType):
    """cuda-python's runtime module as one release binds it; records calls and the handles still live."""

    def __init__(self, release: str) -> None:
        super().__init__("cuda.bindings.runtime")
        spec = RELEASES[release]
        self.release, self.calls, self.live = release, [], {}  # type: ignore[var-annotated]
        self.fail: Set[str] = set()  # functions to answer with an error
        self.invalidated = False  # captures are invalidated: cudaStreamEndCapture answers an error
        self._host: Dict[int, Any] = {}
        self._next = 0x1000
        for name, members in spec["enums"].items():
            setattr(self, name, enum.IntEnum(name, members))
        for name in spec["constants"]:
            setattr(self, name, 1)
        self._fields = spec["structs"]["cudaDeviceProp"]
        self._error_none = spec["error_values"] == "None"
        for name, signature in spec["functions"].items():
            setattr(self, name, self._function(name, signature["params"], signature["values"]))

    def _new(self, kind: str) -> _Handle:
        self._next += 0x100
        handle = _Handle(kind, self._next)
        self.live[handle.address] = handle
        return handle

    def _free(self, kind: str, handle: Any) -> None:
        live = self.live.pop(int(handle), None)
        assert live is not None and live.kind == kind, f"{kind} {handle!r} is not live"

    def _check(self, name: str, params: List[List[str]], args: tuple) -> None:
        if len(args) != len(params):
            raise TypeError(f"{name}() takes exactly {len(params)} positional arguments ({len(args)} given)")
        for (pname, ptype), arg in zip(params, args):
            if ptype.startswith("enum:") and not isinstance(arg, getattr(self, ptype[5:])):
                raise AttributeError(f"{name}: {pname} must be a {ptype[5:]} ('{type(arg).__name__}' has no .value)")
            if ptype == "int" and not isinstance(arg, int):
                raise TypeError(f"{name}: {pname} must be an int, got {type(arg).__name__}")
            if ptype == "bytes" and not isinstance(arg, bytes):
                raise TypeError(f"{name}: {pname} must be bytes, got {type(arg).__name__}")

    def _function(self, name: str, params: List[List[str]], arity: int) -> Any:
        def call(*args: Any) -> tuple:
            self._check(name, params, args)
            self.calls.append(name)
            failed = name in self.fail or (name == "cudaStreamEndCapture" and self.invalidated)
            if failed:  # on an error the values are None in 12.x and 13.x, NULL handles in 11.8
                error = self.cudaError_t.cudaErrorStreamCaptureInvalidated
                return (error,) + ((None,) if self._error_none else (_Handle("null", 0),)) * arity
            values = self._behave(name, args)
            padding = [_Handle("node", 0) for _ in range(arity - len(values))]  # e.g. 11.8's errorNode
            assert len(values) + len(padding) == arity, f"{self.release} {name}: {arity} values"
            return (self.cudaError_t.cudaSuccess, *values, *padding)

        return call

    def _behave(self, name: str, args: tuple) -> List[Any]:
        if name in _MAKES:
            return [self._new(_MAKES[name])]
        if name in _FREES:
            self._free(_FREES[name], args[0])
        if name == "cudaGetDeviceProperties":
            props = types.SimpleNamespace(**{f: None for f in self._fields})
            props.name, props.major, props.minor = b"Orin", 8, 7
            return [props]
        if name == "cudaHostAlloc":
            buffer = (ctypes.c_uint8 * args[0])()
            self._host[ctypes.addressof(buffer)] = buffer
            return [ctypes.addressof(buffer)]
        if name == "cudaFreeHost":
            assert self._host.pop(args[0], None) is not None, "cudaFreeHost of memory cudaHostAlloc did not give"
        if name == "cudaEventElapsedTime":
            return [0.25]
        return []


_MAKES = {
    "cudaStreamCreateWithFlags": "stream",
    "cudaEventCreate": "event",
    "cudaMalloc": "device",
    "cudaStreamEndCapture": "graph",
    "cudaGraphInstantiate": "exec",
    "cudaGraphInstantiateWithFlags": "exec",
}
_FREES = {
    "cudaStreamDestroy": "stream",
    "cudaEventDestroy": "event",
    "cudaFree": "device",
    "cudaGraphDestroy": "graph",
    "cudaGraphExecDestroy": "exec",
}


def install(monkeypatch: pytest.MonkeyPatch, release: str) -> FakeRuntime:
    """Make the release's import paths (and only those) give its runtime module."""
    runtime = FakeRuntime(release)
    cuda = types.ModuleType("cuda")
    cuda.__path__ = []  # a package, so that a submodule it lacks is an ImportError
    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, "cuda", cuda)
    for module in RELEASES[release]["modules"]:
        if module == "cuda.cudart":
            cuda.cudart = runtime  # type: ignore[attr-defined]
            monkeypatch.setitem(sys.modules, "cuda.cudart", runtime)
        else:
            bindings = types.ModuleType("cuda.bindings")
            bindings.__path__ = []
            bindings.runtime = runtime  # type: ignore[attr-defined]
            cuda.bindings = bindings  # type: ignore[attr-defined]
            monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
            monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", runtime)
    return runtime


class _Seen:
    """The layer, noting which of its methods are used."""

    def __init__(self, layer: CudaLayer) -> None:
        self.layer, self.names = layer, set()  # type: ignore[var-annotated]

    def __getattr__(self, name: str) -> Any:
        self.names.add(name)
        return getattr(self.layer, name)


@pytest.fixture(params=sorted(RELEASES))
def runtime(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> FakeRuntime:
    return install(monkeypatch, str(request.param))


def test_every_layer_call_exists_with_its_arity_in_each_release(runtime: FakeRuntime) -> None:
    seen = _Seen(CudaPythonLayer(0))
    layer: Any = seen
    data = np.arange(16, dtype=np.float32)
    with layer.active():
        assert (layer.device_name(), layer.compute_capability()) == ("Orin", (8, 7))
        stream = layer.create_stream()
        assert layer.stream_handle(stream) == int(stream)
        host = layer.alloc_pinned(data.nbytes)
        assert host.nbytes == data.nbytes
        a, b = layer.alloc_device(data.nbytes), layer.alloc_device(data.nbytes)
        start, end = layer.create_event(), layer.create_event()
        layer.record(start, stream)
        layer.copy_htod_async(a, data, stream)
        layer.copy_dtod_async(b, a, data.nbytes, stream)
        layer.copy_dtoh_async(host, b, stream)
        layer.record(end, stream)
        layer.synchronize(stream)
        assert layer.elapsed_ms(start, end) == 0.25
        layer.begin_capture(stream)
        graph = layer.end_capture(stream)
        layer.launch_graph(graph, stream)
        layer.destroy_graph(graph)
        layer.begin_capture(stream)
        layer.abort_capture(stream)  # a valid capture: its graph is destroyed, not instantiated
        for event in (start, end):
            layer.destroy_event(event)
        layer.free_device(a)
        layer.free_device(b)
        layer.free_pinned(host)
        layer.destroy_stream(stream)
    layer.close()
    assert set(CudaLayer.__abstractmethods__) <= seen.names
    assert not runtime.live and not runtime._host, f"not destroyed: {list(runtime.live.values())}"
    assert "cudaGraphInstantiate" not in runtime.calls  # its arguments differ between 11.8 and 12.x


def test_an_invalidated_capture_is_aborted_quietly_and_ended_loudly(runtime: FakeRuntime) -> None:
    layer = CudaPythonLayer(0)
    stream = layer.create_stream()
    runtime.invalidated = True
    layer.begin_capture(stream)
    layer.abort_capture(stream)  # a NULL graph (None from 12.x, a NULL cudaGraph_t in 11.8): nothing to destroy
    layer.begin_capture(stream)
    with pytest.raises(CudaError, match="cudaStreamEndCapture failed: cudaErrorStreamCaptureInvalidated"):
        layer.end_capture(stream)
    layer.destroy_stream(stream)
    assert not runtime.live


def test_a_graph_that_does_not_instantiate_is_destroyed(runtime: FakeRuntime) -> None:
    layer = CudaPythonLayer(0)
    stream = layer.create_stream()
    runtime.fail.add("cudaGraphInstantiateWithFlags")
    layer.begin_capture(stream)
    with pytest.raises(CudaError, match="cudaGraphInstantiateWithFlags failed"):
        layer.end_capture(stream)
    layer.destroy_stream(stream)
    assert not runtime.live


def test_the_fixture_tells_the_releases_apart() -> None:
    """The stand-in is only as strict as the signatures: 11.8 and 12.x differ where NVIDIA's sources do."""
    instantiate = {r: len(s["functions"]["cudaGraphInstantiate"]["params"]) for r, s in RELEASES.items()}
    assert instantiate == {"11.8.3": 3, "11.8.7": 3, "12.9.10": 2, "13.0.3": 2}
    assert [r for r, s in RELEASES.items() if "cuda.cudart" not in s["modules"]] == ["13.0.3"]
    assert [r for r, s in RELEASES.items() if "cuda.bindings.runtime" not in s["modules"]] == ["11.8.3"]
