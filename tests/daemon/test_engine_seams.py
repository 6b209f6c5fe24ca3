"""Seams between the daemon and the engines, with the real ONet engine: the engine cache keeps the
engines in use, the progress wrapper passes the backend's own stage times through, and a
calibration holds the rebuild slot."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple

import numpy as np
import pytest

from agent.backends.base import Arrays, Engine, HookedEngine, StageTimes
from agent.build import engine as building
from agent.config.sections import Config
from agent.daemon.swap import Busy, Handoff, Rebuilder
from agent.model.preprocess import make_batch


def small_cache(cfg: Config, optimization: str) -> Config:
    """A 2 MB engine cache (room for one ONet engine) and an optimization level (a distinct cache key)."""
    ort = replace(cfg.backend.onnxruntime, graph_optimization=optimization)
    return replace(cfg, backend=replace(cfg.backend, onnxruntime=ort), paths=replace(cfg.paths, engine_cache_max_mb=2))


@pytest.mark.parametrize("kept", [True, False])
def test_a_build_does_not_evict_the_engines_in_use(demo_config, kept):
    serving = building.build(small_cache(demo_config, "all"), precision="fp32").to_json()
    keep = [serving["cache_key"]] if kept else []
    other = building.build(small_cache(demo_config, "basic"), precision="fp32", keep=keep).to_json()
    assert other["cache_key"] != serving["cache_key"]
    assert Path(other["engine_path"]).is_file()
    assert Path(serving["engine_path"]).is_file() is kept  # without keep, the 2 MB cap evicts it


class SplitStages(Engine):
    """A real ONNX Runtime engine reporting a transfer / compute split, as TensorRT's runtime does."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.inputs, self.outputs, self.info = engine, engine.inputs, engine.outputs, engine.info

    def infer(self, feeds: Mapping[str, np.ndarray]) -> Arrays:
        return self.engine.infer(feeds)

    def infer_timed(self, feeds: Mapping[str, np.ndarray]) -> Tuple[Arrays, StageTimes]:
        started = time.perf_counter()
        outputs = self.engine.infer(feeds)
        compute = (time.perf_counter() - started) * 1000.0
        return outputs, {"h2d": 0.0, "compute": compute, "d2h": 0.0}


def test_progress_engine_passes_the_stage_split_through(demo_config, make_pipeline):
    pipeline, _ = make_pipeline(demo_config)
    ticks: List[float] = []
    wrapped = HookedEngine(SplitStages(pipeline.engine), after=lambda: ticks.append(time.monotonic()))
    spec = pipeline.model.spec
    feeds = {spec.name: make_batch([np.full((spec.height, spec.width, 3), 128, dtype=np.uint8)], spec)[0]}
    outputs, stages = wrapped.infer_timed(feeds)
    assert set(stages) == {"h2d", "compute", "d2h"} and stages["compute"] > 0
    assert len(ticks) == 1  # each timed inference is progress for the watchdog
    expected = pipeline.engine.infer(feeds)
    assert all(np.array_equal(outputs[name], expected[name]) for name in expected)


def test_a_calibration_holds_the_rebuild_slot():
    release = threading.Event()
    rebuilder = Rebuilder(
        lambda precision: {}, lambda report: None, lambda candidate: None, Handoff(), lambda result: None
    )
    outcome: Dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: outcome.update(rebuilder.run_exclusive("calibrate", lambda: {"done": release.wait(10)}))
    )
    worker.start()
    end = time.monotonic() + 5
    while rebuilder.running is None and time.monotonic() < end:
        time.sleep(0.01)
    job = rebuilder.running
    assert job is not None and job.startswith("calibrate-")
    with pytest.raises(Busy) as busy:
        rebuilder.start("int8", "command")
    assert busy.value.job_id == job
    with pytest.raises(Busy):
        rebuilder.run_exclusive("calibrate", lambda: {})
    release.set()
    worker.join(10)
    assert outcome == {"done": True} and rebuilder.running is None
    assert rebuilder.run_exclusive("calibrate", lambda: {"again": 1}) == {"again": 1}
