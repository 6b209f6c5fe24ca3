"""Every tensor of the network gets a range, and the cache carries the installed TensorRT's version
(calibration.ranges.network_amax, calibration.artefacts): on the real ONet and a ResNet-18-shaped model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import onnx
import pytest

from agent.config.load import load_config
from agent.config.sections import Config
from agent.model.pipeline import prepare_model
from agent.model.preprocess import make_batch
from agent.util.errors import InputError
from benchmarks.resnet import resnet18
from calibration.artefacts import CACHE_FILE, cache_from_ranges, installed_tensorrt, read_ranges, write_artefacts
from calibration.calibrators import QuantizeSettings, quantize_qdq
from calibration.normalize import normalize_file
from calibration.ranges import activation_ranges
from calibration.trt_cache import parse_cache

Case = Tuple[str, str, List[np.ndarray]]  # normalized model, input name, calibration batches


@pytest.fixture(scope="module")
def onet(tmp_path_factory: pytest.TempPathFactory, demo_dir: Path, lfw) -> Case:
    cfg = load_config(str(demo_dir / "demo.yaml"), [f"paths.state_dir={tmp_path_factory.mktemp('state')}"])
    model = prepare_model(Config.from_node(cfg).model)
    normalized = str(tmp_path_factory.mktemp("onet") / "onet.onnx")
    normalize_file(model.path, normalized)
    spec = dataclasses.replace(model.spec, batch=10)
    images = list(lfw[0][::10])
    return normalized, model.spec.name, [make_batch(images[i : i + 10], spec)[0] for i in range(0, len(images), 10)]


@pytest.fixture(scope="module")
def resnet(tmp_path_factory: pytest.TempPathFactory) -> Case:
    folder = tmp_path_factory.mktemp("resnet")
    onnx.save(resnet18(seed=0, size=(64, 64), classes=10), str(folder / "resnet.onnx"))
    normalize_file(str(folder / "resnet.onnx"), str(folder / "normalized.onnx"))
    rng = np.random.default_rng(1)
    return str(folder / "normalized.onnx"), "input", [rng.random((1, 3, 64, 64), dtype=np.float32) for _ in range(4)]


def _calibrate(case: Case, folder: Path) -> Tuple[Dict[str, str], Any]:
    normalized, input_name, batches = case
    qdq = str(folder / "in.qdq.onnx")
    settings = QuantizeSettings("minmax", symmetric_activations=True)  # as for TensorRT
    quantize_qdq(normalized, qdq, input_name, batches, settings)
    paths = write_artefacts(folder / "out", normalized, qdq, settings, input_name, batches, {})
    return paths, onnx.load(paths["qdq_model"])


@pytest.mark.parametrize("which", ["onet", "resnet"])
def test_every_tensor_of_the_network_has_a_range(which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    case = request.getfixturevalue(which)
    paths, qdq = _calibrate(case, tmp_path)
    float_model = onnx.load(case[0])
    ranges = json.loads(Path(paths["trt_ranges"]).read_text())
    node_outputs = {o for n in float_model.graph.node for o in n.output}
    assert node_outputs | {case[1]} == set(ranges["amax"])  # the input and every node output, ONNX names
    quantized = set(activation_ranges(qdq))
    assert set(ranges["amax"]) - quantized, "tensors without a QuantizeLinear (fused Conv outputs, ...) are covered"
    relu = [o for n in float_model.graph.node if n.op_type in ("Relu", "PRelu") for o in n.output]
    assert relu and all(ranges["amax"][r] > 0 for r in relu)
    assert {n for n, source in ranges["source"].items() if source == "qdq"} == quantized & set(ranges["amax"])
    assert set(ranges["source"].values()) <= {"qdq", "propagated", "observed"}
    report = json.loads(Path(paths["calibration_report"]).read_text())
    assert set(report["tensors"]) == set(ranges["amax"]) and report["tensorrt_cache"]["tensors"] == len(ranges["amax"])
    assert report["tensorrt_cache"]["provenance"] == ranges["provenance"]


def test_range_preserving_ops_take_their_input_range(resnet: Case, tmp_path: Path) -> None:
    paths, _ = _calibrate(resnet, tmp_path)
    ranges = json.loads(Path(paths["trt_ranges"]).read_text())
    model = onnx.load(resnet[0])
    pools = [n for n in model.graph.node if n.op_type == "MaxPool"]
    assert pools
    for node in pools:
        assert ranges["amax"][node.output[0]] == pytest.approx(ranges["amax"][node.input[0]], rel=1e-6)
        assert ranges["source"][node.output[0]] in ("propagated", "qdq")


def test_without_tensorrt_no_cache_names_a_guessed_release(resnet: Case, tmp_path: Path) -> None:
    """Calibration once wrote TRT-8601-... here with no TensorRT installed; TensorRT of any other
    release ignores such a cache and fails calibrating (NVIDIA/TensorRT#1378)."""
    assert installed_tensorrt() is None
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / CACHE_FILE).write_text("TRT-8601-EntropyCalibration2\nstale: 3f800000\n")
    paths, _ = _calibrate(resnet, tmp_path)
    assert "trt_calibration_cache" not in paths and not (tmp_path / "out" / CACHE_FILE).exists()
    report = json.loads(Path(paths["calibration_report"]).read_text())
    assert report["tensorrt_cache"]["header"] is None


@pytest.mark.parametrize("version, header", [("8.5.2", "TRT-8502"), ("8.6.1.6", "TRT-8601"), ("10.3.0", "TRT-100300")])
def test_build_renders_the_cache_for_the_installed_release(
    resnet: Case, tmp_path: Path, version: str, header: str
) -> None:
    paths, _ = _calibrate(resnet, tmp_path)
    cache = parse_cache(cache_from_ranges(paths["trt_ranges"], version))
    assert f"TRT-{cache.version}" == header and cache.algorithm == "EntropyCalibration2"
    amax = read_ranges(paths["trt_ranges"])
    assert set(cache.scales) == set(amax)
    for name, value in cache.amax().items():
        assert value == pytest.approx(amax[name], rel=1e-6)


def test_damaged_ranges_are_refused(resnet: Case, tmp_path: Path) -> None:
    paths, _ = _calibrate(resnet, tmp_path)
    document = json.loads(Path(paths["trt_ranges"]).read_text())
    document["amax"]["input"] *= 2
    Path(paths["trt_ranges"]).write_text(json.dumps(document))
    with pytest.raises(InputError, match="checksum"):
        cache_from_ranges(paths["trt_ranges"], "10.3.0")
    with pytest.raises(InputError, match="not a tensor ranges file"):
        read_ranges(str(tmp_path / "missing.json"))
