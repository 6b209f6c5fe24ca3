"""Calibration through TensorRT itself (implicit INT8, TensorRT 8.5 to 10.x) against the double.

The build child feeds the stored frames to TensorRT's calibrator through the CUDA layer, TensorRT
writes its own cache for the installed release, a stale cache is ignored, and a cache from ONNX
Runtime ranges is used only as a fallback that names itself. 11.x has no implicit INT8.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import onnx
import pytest

from agent.backends.base import BuildRequest, Int8Calibration
from agent.backends.tensorrt.build_child import BuildFailed, node_layers
from agent.backends.tensorrt.calibrator import make_calibrator
from agent.util.errors import InputError
from calibration.trt_cache import cache_for, parse_cache, tensorrt_version_number

from .conftest import use_double
from .host_cuda import HostCudaLayer

IMPLICIT = ("8.5.2", "8.6.1", "10.3.0", "10.13.3")
SHAPES = {"input_3": (4, 48, 48, 3)}


def _backend() -> Any:
    from agent.backends.tensorrt.backend import TensorRTBackend

    return TensorRTBackend(cuda_factory=HostCudaLayer)


def _frames(tmp: Path, batches: int = 3, shape: tuple = (4, 48, 48, 3)) -> str:
    path = tmp / "frames.npy"
    np.save(path, np.random.default_rng(0).uniform(-1, 1, (batches,) + shape).astype(np.float32))
    return str(path)


def _tensors(model_path: str) -> List[str]:
    graph = onnx.load(model_path).graph
    initializers = {i.name for i in graph.initializer}
    return [v.name for v in graph.input if v.name not in initializers] + [o for n in graph.node for o in n.output]


def _build(tmp: Path, model: str, calibration: Int8Calibration) -> Any:
    request = BuildRequest(model, "int8", SHAPES, {"build_timeout_s": 60}, calibration)
    return _backend().build(request, str(tmp / "int8.engine"))


@pytest.mark.parametrize("release", IMPLICIT)
def test_tensorrt_calibrates_on_the_frames_and_writes_its_own_cache(
    trt: Any, release: str, tmp_path: Path, onet_path: str
) -> None:
    cache = tmp_path / "tensorrt.cache"
    out = _build(tmp_path, onet_path, Int8Calibration(frames_path=_frames(tmp_path), cache_path=str(cache)))
    calibrator = out.details["calibrator"]
    assert calibrator["batches_fed"] == 3 and calibrator["scales"] == "tensorrt calibration"
    written = parse_cache(cache.read_text())
    assert (written.version, written.algorithm) == (tensorrt_version_number(release), "EntropyCalibration2")
    assert calibrator["cache_written"] == f"TRT-{written.version}-EntropyCalibration2"
    assert set(written.scales) == set(_tensors(onet_path))  # every tensor of the network
    assert not any("Missing scale" in line for line in out.log)
    assert out.precision == "int8" and "INT8" in out.details["builder_flags"]


@pytest.mark.parametrize("release", ["8.6.1", "10.3.0"])
def test_minmax_algorithm_uses_tensorrts_minmax_calibrator(
    trt: Any, release: str, tmp_path: Path, onet_path: str
) -> None:
    cache = tmp_path / "tensorrt.cache"
    spec = Int8Calibration(algorithm="MinMaxCalibration", frames_path=_frames(tmp_path, 1), cache_path=str(cache))
    out = _build(tmp_path, onet_path, spec)
    assert parse_cache(cache.read_text()).algorithm == "MinMaxCalibration"
    assert out.details["calibrator"]["algorithm"] == "MinMaxCalibration"


@pytest.mark.parametrize("release", ["8.5.2", "10.13.3"])
def test_a_stale_cache_is_ignored_and_tensorrt_calibrates(
    trt: Any, release: str, tmp_path: Path, onet_path: str
) -> None:
    """Defect 2: TensorRT skips a cache whose header names another release and calls the calibrator
    (NVIDIA/TensorRT#1378); with the frames it calibrates and rewrites the cache for its own release."""
    cache = tmp_path / "tensorrt.cache"
    cache.write_text(cache_for("8.6.1" if release != "8.6.1" else "8.5.2", {"input_3": 1.0}))
    out = _build(tmp_path, onet_path, Int8Calibration(frames_path=_frames(tmp_path, 2), cache_path=str(cache)))
    assert out.details["calibrator"]["batches_fed"] == 2
    assert parse_cache(cache.read_text()).version == tensorrt_version_number(release)


@pytest.mark.parametrize("release", ["8.6.1", "10.3.0"])
def test_failed_calibration_falls_back_to_the_ranges_cache_and_says_so(
    trt: Any, release: str, tmp_path: Path, onet_path: str
) -> None:
    amax = {name: 2.0 for name in _tensors(onet_path)}
    spec = Int8Calibration(
        frames_path=_frames(tmp_path, 0),  # no stored frames: TensorRT's calibration gets no batch
        cache_path=str(tmp_path / "tensorrt.cache"),
        fallback_cache=cache_for(release, amax),
        fallback_source="ONNX Runtime ranges (calibration/tensorrt-ranges.json)",
    )
    out = _build(tmp_path, onet_path, spec)
    calibrator = out.details["calibrator"]
    assert calibrator["scales"] == "ONNX Runtime ranges (calibration/tensorrt-ranges.json)"
    assert calibrator["failed_calibration"]["batches_fed"] == 0
    assert any("TensorRT's calibration failed" in n and "(fallback)" in n for n in out.notes)
    assert not any("Missing scale" in line for line in out.log)
    with pytest.raises(BuildFailed, match="Calibration failure"):  # and without a fallback, a failed build
        _build(tmp_path, onet_path, Int8Calibration(frames_path=spec.frames_path))


@pytest.mark.parametrize("release", ["8.5.2"])
def test_a_cache_that_misses_tensors_makes_tensorrt_warn(
    trt: Any, release: str, tmp_path: Path, onet_path: str
) -> None:
    """Defect 3: a cache with scales for some tensors only leaves the others' layers in float."""
    partial = {name: 2.0 for name in _tensors(onet_path)[:3]}
    spec = Int8Calibration(fallback_cache=cache_for(release, partial), fallback_source="a partial cache")
    out = _build(tmp_path, onet_path, spec)
    missing = [line for line in out.log if "Missing scale and zero-point for tensor" in line]
    assert len(missing) == len(_tensors(onet_path)) - 3
    assert out.details["calibrator"]["scales"] == "a partial cache"
    assert "INT8 scales from a partial cache, not from TensorRT's calibrator" in out.notes


@pytest.mark.parametrize("release", ["8.6.1", "10.13.3"])
def test_mixed_precision_pins_the_excluded_nodes_layers_to_fp32(
    trt: Any, release: str, tmp_path: Path, onet_path: str
) -> None:
    nodes = [n.name for n in onnx.load(onet_path).graph.node if n.op_type == "Conv"][:2]
    spec = Int8Calibration(frames_path=_frames(tmp_path, 1), keep_float=tuple(nodes))
    out = _build(tmp_path, onet_path, spec)
    assert out.details["calibrator"]["kept_float"] == nodes
    assert f"{len(nodes)} layer(s) kept in FP32 (mixed precision)" in out.notes
    assert any(f"FP32 by constraint: {nodes}" in line for line in out.log)


@pytest.mark.parametrize("release", ["8.6.1"])
def test_frames_of_another_rank_are_refused_by_name(trt: Any, release: str, tmp_path: Path, onet_path: str) -> None:
    with pytest.raises(InputError, match=r"calibration frames of shape \(4, 48, 48\).*input_3.*rank 4"):
        _build(tmp_path, onet_path, Int8Calibration(frames_path=_frames(tmp_path, 1, shape=(4, 48, 48))))


def test_11_has_no_implicit_int8(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, onet_path: str) -> None:
    use_double(monkeypatch, "11.1")
    with pytest.raises(InputError, match="no implicit INT8 calibration"):
        _build(tmp_path, onet_path, Int8Calibration(frames_path=_frames(tmp_path, 1)))


def test_node_layers_follows_onnx_tensorrts_layer_names() -> None:
    nodes = {"conv1", "fc"}
    assert node_layers("conv1", nodes) and node_layers("conv1_17", nodes)
    assert not node_layers("conv1_bias", nodes) and not node_layers("conv12", nodes) and not node_layers("f", nodes)


@pytest.mark.parametrize("release", ["10.3.0"])
def test_the_calibrator_frees_every_cuda_object(trt: Any, release: str) -> None:
    layers: Dict[str, HostCudaLayer] = {}

    def open_layer() -> HostCudaLayer:
        layers["cuda"] = HostCudaLayer()
        return layers["cuda"]

    frames = np.ones((2, 1, 4), np.float32)
    calibrator = make_calibrator(trt, "EntropyCalibration2", frames, None, b"", open_layer)
    assert calibrator.read_calibration_cache() is None  # frames and no cache: TensorRT calibrates
    pointers = [calibrator.get_batch(["x"]), calibrator.get_batch(["x"]), calibrator.get_batch(["x"])]
    assert pointers[0] == pointers[1] and pointers[2] is None and calibrator.fed == 2
    assert calibrator.get_batch(["x", "y"]) is None  # past the end: None, no error
    calibrator.free()
    cuda = layers["cuda"]
    assert cuda.live == {} and cuda.created == cuda.destroyed and cuda.closed


@pytest.mark.slow
@pytest.mark.parametrize("release", ["8.6.1", "11.1"])
def test_the_int8_search_calibrates_with_tensorrt_when_configured(
    release: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.backends import registry
    from agent.build import engine as building
    from agent.config.load import load_config
    from agent.config.sections import Config
    from agent.demo import sample

    def backend(name: str) -> Any:
        return _backend() if registry.resolve_name(name) == "tensorrt" else registry.get_backend(name)

    use_double(monkeypatch, release)
    monkeypatch.setattr(building, "get_backend", backend)
    path = sample.prepare(tmp_path)
    overrides = ["backend.name=tensorrt", "backend.tensorrt.int8_calibration=tensorrt", f"paths.state_dir={tmp_path}/s"]
    report = building.build(Config.from_node(load_config(str(path), overrides)), precision="int8")
    first = report.gate["attempts"][0]
    if release == "11.1":
        assert any("has no implicit INT8 calibration, so the candidates are QDQ models" in n for n in report.notes)
        assert "tensorrt_calibration" not in first
        return
    assert any("INT8 scales from TensorRT 8.6.1's own calibrator" in n for n in report.notes)
    assert first["method"] == "entropy" and first["tensorrt_calibration"]["scales"] == "tensorrt calibration"
    assert first["tensorrt_calibration"]["batches_fed"] > 0
    assert report.promoted and report.built_precision == "int8"
    kept = parse_cache(Path(report.artefacts["tensorrt_calibrator_cache"]).read_text())
    assert (kept.version, kept.algorithm) == (8601, "EntropyCalibration2")
