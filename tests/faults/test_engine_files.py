"""Case 3 of issue 15 (an engine file damaged in place is served on resume) and the engines.json item
of case 10 (a copied state directory serves the original directory's engine files), with the real
ONet engine and ONNX Runtime."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agent.backends.registry import get_backend
from agent.build import engine as building
from agent.config.load import load_config
from agent.config.sections import Config
from agent.daemon.swap import EngineState


def test_an_engine_damaged_in_place_is_refused_on_resume_and_rebuilt(demo_config):
    report = building.build(demo_config, precision="fp32").to_json()
    path = Path(report["engine_path"])
    data = bytearray(path.read_bytes())
    middle = len(data) // 2  # inside the weights: same size, still a valid model
    data[middle : middle + 64] = bytes(255 - b for b in data[middle : middle + 64])
    path.write_bytes(bytes(data))
    backend = get_backend(report["backend"])
    backend.load(str(path), demo_config.backend.options(backend.name)).close()  # the runtime alone would serve it
    with pytest.raises(building.EngineDamaged, match="sha256"):
        building.load_built(demo_config, report)
    assert not path.exists()  # the bad entry is gone; the next build makes it again
    rebuilt = building.build(demo_config, precision="fp32").to_json()
    assert not rebuilt["cache_hit"]
    engine, _ = building.load_built(demo_config, rebuilt)
    engine.close()


def test_a_copied_state_dir_serves_its_own_engine_files(demo_dir, tmp_path):
    original = Config.from_node(load_config(str(demo_dir / "demo.yaml"), [f"paths.state_dir={tmp_path / 'a'}"]))
    report = building.build(original, precision="fp32").to_json()
    EngineState(original.paths.state_dir).promote(report, "fp32")
    stored = json.loads((tmp_path / "a" / "daemon" / "engines.json").read_text())
    assert not Path(stored["current"]["engine_path"]).is_absolute()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "a")  # nothing may still point there
    copy = Config.from_node(load_config(str(demo_dir / "demo.yaml"), [f"paths.state_dir={tmp_path / 'b'}"]))
    saved = EngineState(copy.paths.state_dir).resumable("fp32")
    assert saved is not None and Path(saved["engine_path"]).is_file()
    assert str(Path(saved["engine_path"]).resolve()).startswith(str((tmp_path / "b").resolve()))
    engine, _ = building.load_built(copy, saved)
    engine.close()
