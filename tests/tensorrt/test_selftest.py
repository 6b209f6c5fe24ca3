"""edge-agent selftest on the TensorRT path, against the double of two releases: FP32, FP16 and
INT8 built by the (double's) builder in the build child, run through the runtime over the host
CUDA stand-in, compared with ONNX Runtime FP32, and timed with a trtexec-shaped program that
prints a real trtexec summary."""

from __future__ import annotations

import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.backends import registry
from agent.build import engine as building
from agent.config.load import load_config
from agent.config.sections import Config
from agent.demo import sample
from agent.measure.benchmark import BenchSettings
from agent.selftest import run as selftest
from agent.selftest.summary import render

from .conftest import use_double
from .host_cuda import HostCudaLayer

LOG = Path(__file__).resolve().parents[1] / "fixtures" / "trtexec" / "performance_summary.log"
pytestmark = pytest.mark.slow


def _backend(name: str) -> Any:
    if registry.resolve_name(name) != "tensorrt":
        return registry.get_backend(name)
    from agent.backends.tensorrt.backend import TensorRTBackend

    return TensorRTBackend(cuda_factory=HostCudaLayer)


@pytest.mark.parametrize("release", ["8.6.1", "10.13.3"])
def test_selftest_builds_compares_and_times_each_precision(
    release: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_double(monkeypatch, release)
    monkeypatch.setattr(building, "get_backend", _backend)
    monkeypatch.setattr(selftest, "get_backend", _backend)
    trtexec = tmp_path / "trtexec"
    trtexec.write_text(f"#!{sys.executable}\nprint(open({str(LOG)!r}).read())\n")
    trtexec.chmod(trtexec.stat().st_mode | stat.S_IXUSR)
    path = sample.prepare(tmp_path)
    node = load_config(str(path), ["backend.name=tensorrt", f"paths.state_dir={tmp_path / 'state'}"])
    settings = selftest.SelftestSettings(
        bench=BenchSettings(warmup_s=0.1, min_duration_s=0.2, min_iterations=5, max_duration_s=5), trtexec=str(trtexec)
    )
    report = selftest.run_selftest(Config.from_node(node), settings)
    entries = {entry["precision"]: entry for entry in report["results"]}
    assert report["backend"] == "tensorrt" and list(entries) == ["fp32", "fp16", "int8"]
    for precision, entry in entries.items():
        assert entry["status"] == "passed", (precision, entry.get("reasons"))
        assert entry["build"]["backend"] == "tensorrt" and entry["build"]["backend_version"] == release
        assert entry["agreement"]["top1_agreement"] >= 0.99
        assert entry["trtexec"]["summary"]["latency_ms"]["median"] == 9.76404
        assert entry["trtexec"]["command"][1:] == [
            f"--loadEngine={entry['build']['engine_path']}",
            "--shapes=input_3:1x48x48x3",
            "--useSpinWait",
        ]
        assert entry["trtexec"]["ours_p50_over_trtexec_median"] > 0
    assert entries["int8"]["built_precision"] == "int8"
    assert report["passed"] is True
    assert render(report).splitlines()[-1] == "selftest PASSED"


def test_selftest_proves_tensorrts_own_calibrator_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a Jetson: ``edge-agent selftest --precisions int8 --set backend.tensorrt.int8_calibration=tensorrt``."""
    use_double(monkeypatch, "10.3.0")
    monkeypatch.setattr(building, "get_backend", _backend)
    monkeypatch.setattr(selftest, "get_backend", _backend)
    path = sample.prepare(tmp_path)
    overrides = ["backend.name=tensorrt", "backend.tensorrt.int8_calibration=tensorrt", f"paths.state_dir={tmp_path}/s"]
    settings = selftest.SelftestSettings(
        bench=BenchSettings(warmup_s=0.1, min_duration_s=0.2, min_iterations=5, max_duration_s=5),
        precisions=("int8",),
    )
    report = selftest.run_selftest(Config.from_node(load_config(str(path), overrides)), settings)
    (entry,) = report["results"]
    assert entry["status"] == "passed" and entry["build"]["int8_scales"] == "tensorrt calibration"
    assert any("TensorRT 10.3.0's own calibrator" in note for note in entry["build"]["notes"])
    assert "  INT8 scales: tensorrt calibration" in render(report).splitlines()
