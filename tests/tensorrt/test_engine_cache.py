"""The backend inside the engine store (agent.build.engine.build_cached): identity in the key, rebuild on change."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agent.build.engine import build_cached
from agent.config.sections import Config
from agent.model.pipeline import prepare_model
from agent.util.errors import EngineIncompatible

from .conftest import use_double
from .host_cuda import HostCudaLayer


def _backend() -> object:
    from agent.backends.tensorrt.backend import TensorRTBackend

    return TensorRTBackend(cuda_factory=HostCudaLayer)


def test_cached_build_keyed_by_release_and_device(demo_config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    use_double(monkeypatch, "10.3.0")
    model = prepare_model(demo_config.model)
    first = build_cached(demo_config.backend, demo_config.paths, _backend(), model, "fp32", model.sha256).to_json()
    again = build_cached(demo_config.backend, demo_config.paths, _backend(), model, "fp32", model.sha256).to_json()
    assert not first["cache_hit"] and again["cache_hit"] and again["engine_path"] == first["engine_path"]
    sidecar = json.loads(Path(first["engine_path"]).with_suffix(".json").read_text())
    assert (
        sidecar["key_fields"]["device"]["tensorrt"] == "10.3.0"
        and sidecar["key_fields"]["device"]["gpu"] == "host stand-in"
    )
    assert sidecar["build"]["details"]["network_flags"] == []  # EXPLICIT_BATCH is ignored from 10.0
    assert (Path(first["engine_path"]).parent / "timing-cache").is_dir()

    use_double(monkeypatch, "10.13.3")  # a JetPack upgrade: the old engine is not looked up, it is rebuilt
    with pytest.raises(EngineIncompatible, match="rebuild"):
        _backend().load(first["engine_path"], {})
    upgraded = build_cached(demo_config.backend, demo_config.paths, _backend(), model, "fp32", model.sha256).to_json()
    assert not upgraded["cache_hit"] and upgraded["cache_key"] != first["cache_key"]
    engine = _backend().load(upgraded["engine_path"], {})
    x = np.zeros(model.input_shapes()[engine.inputs[0].name], np.float32)
    assert set(engine.infer({engine.inputs[0].name: x})) == {t.name for t in engine.outputs}
