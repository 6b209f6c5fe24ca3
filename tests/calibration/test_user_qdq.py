"""A QDQ model the user brings (model.path already has Q/DQ nodes) built as is for int8 and best:
no calibration, no INT8 search; for TensorRT the conformance checker runs first and refuses
ONNX Runtime's default quantize_static output, naming each rule (agent.build.engine.build and
`edge-agent build`, exit 2)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator, List

import numpy as np
import onnx
import pytest

from agent.build import engine as building
from agent.cli.main import main
from agent.config.load import load_config
from agent.config.sections import Config
from agent.model.info import read_model_info
from agent.model.pipeline import prepare_model
from agent.util.errors import InputError
from calibration import conformance
from calibration.calibrators import QuantizeSettings, make_reader, quantize_qdq
from calibration.normalize import normalize_file
from tests.tensorrt.conftest import DOUBLE_DIR, use_double
from tests.tensorrt.host_cuda import HostCudaLayer


def _batches(shape: tuple, count: int = 3) -> List[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.uniform(0, 1, shape).astype(np.float32) for _ in range(count)]


@pytest.fixture(scope="module")
def onet_qdq(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The demo's ONet quantized two ways: by the project for TensorRT, and by ONNX Runtime's defaults."""
    cfg = Config.from_node(load_config(str(demo_dir / "demo.yaml"), []))
    model = prepare_model(cfg.model)
    folder = tmp_path_factory.mktemp("user-qdq")
    normalized = str(folder / "onet.onnx")
    normalize_file(model.path, normalized)
    shape = model.input_shapes(4)[model.spec.name]
    ours, theirs = str(folder / "onet.trt-qdq.onnx"), str(folder / "onet.ort-default.onnx")
    quantize_qdq(normalized, ours, model.spec.name, _batches(shape), QuantizeSettings("minmax"))
    from onnxruntime import quantization as q

    q.quantize_static(normalized, theirs, make_reader(model.spec.name, _batches(shape)))
    return {"tensorrt": ours, "ort-default": theirs}


@pytest.fixture
def no_double_left() -> Iterator[None]:
    yield
    module = sys.modules.get("tensorrt")
    if module is not None and str(getattr(module, "__file__", "")).startswith(DOUBLE_DIR):
        del sys.modules["tensorrt"]


def _config(demo_dir: Path, tmp_path: Path, model_path: str, backend: str) -> Config:
    overrides = [f"paths.state_dir={tmp_path / 'state'}", f"model.path={model_path}", f"backend.name={backend}"]
    return Config.from_node(load_config(str(demo_dir / "demo.yaml"), overrides))


def _tensorrt_backend(name: str) -> Any:
    from agent.backends.tensorrt.backend import TensorRTBackend

    return TensorRTBackend(cuda_factory=HostCudaLayer)


def test_the_models_are_what_they_claim(onet_qdq: dict) -> None:
    assert conformance.check(onnx.load(onet_qdq["tensorrt"])) == []
    assert conformance.check(onnx.load(onet_qdq["ort-default"]))
    assert all(read_model_info(path).quantized for path in onet_qdq.values())


@pytest.mark.parametrize("release, precision", [("8.6.1", "int8"), ("10.3.0", "best"), ("11.1", "int8")])
def test_a_conforming_qdq_model_builds_as_is_on_tensorrt(
    release: str,
    precision: str,
    onet_qdq: dict,
    demo_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_double_left: None,
) -> None:
    use_double(monkeypatch, release)
    monkeypatch.setattr(building, "get_backend", _tensorrt_backend)
    cfg = _config(demo_dir, tmp_path, onet_qdq["tensorrt"], "tensorrt")
    report = building.build(cfg, precision=precision)
    assert report.promoted is True and report.built_precision == "int8" and report.precision == precision
    assert report.gate is None and report.calibration_set is None  # no calibration, no INT8 search
    assert "already quantized" in (report.decision or "") and "no FP32 model" in (report.decision or "")
    assert any("spot-labeled" in n for n in report.notes or [])
    assert Path(str(report.engine_path)).is_file() and Path(str(report.report_path)).is_file()
    assert building.build(cfg, precision=precision).cache_hit  # the same engine, found in the cache


def test_onnxruntime_runs_a_user_qdq_model_as_is_without_tensorrt_rules(
    onet_qdq: dict, demo_dir: Path, tmp_path: Path
) -> None:
    cfg = _config(demo_dir, tmp_path, onet_qdq["ort-default"], "onnxruntime")
    report = building.build(cfg, precision="int8")
    assert report.promoted is True and report.built_precision == "int8" and report.gate is None
    assert "already quantized" in (report.decision or "")
    assert any("TensorRT's explicit-quantization rules are not checked" in n for n in report.notes or [])


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_a_quantized_model_is_not_reported_as_a_float_precision(
    onet_qdq: dict, demo_dir: Path, tmp_path: Path, precision: str
) -> None:
    cfg = _config(demo_dir, tmp_path, onet_qdq["ort-default"], "onnxruntime")
    with pytest.raises(InputError, match=f"already quantized .*precision int8 or best, not {precision}"):
        building.build(cfg, precision=precision)


def test_onnxruntime_default_output_is_refused_for_tensorrt_naming_each_rule(
    onet_qdq: dict, demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_double_left: None
) -> None:
    use_double(monkeypatch, "10.3.0")
    monkeypatch.setattr(building, "get_backend", _tensorrt_backend)
    cfg = _config(demo_dir, tmp_path, onet_qdq["ort-default"], "tensorrt")
    with pytest.raises(InputError) as caught:
        building.build(cfg, precision="int8")
    message = str(caught.value)
    violations = conformance.check(onnx.load(onet_qdq["ort-default"]))
    assert f"breaks {len(violations)} TensorRT explicit-quantization rule(s)" in message
    assert f"[{conformance.INT8_ONLY}]" in message and f"[{conformance.ZERO_POINT}]" in message
    assert all(str(v) in message for v in violations)  # one line per violation: rule, node, tensor
    assert not (tmp_path / "state" / "engines").exists() or not list((tmp_path / "state" / "engines").iterdir())


def test_cli_build_exits_2_listing_the_rules(
    onet_qdq: dict,
    demo_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    no_double_left: None,
) -> None:
    use_double(monkeypatch, "8.6.1")
    args = ["build", "-c", str(demo_dir / "demo.yaml"), "--precision", "int8"]
    for item in (f"paths.state_dir={tmp_path / 'state'}", f"model.path={onet_qdq['ort-default']}"):
        args += ["--set", item]
    code = main(args + ["--backend", "tensorrt"])
    err = capsys.readouterr().err
    assert code == 2
    assert "TensorRT explicit-quantization rule(s)" in err and f"[{conformance.INT8_ONLY}] node " in err
    assert f"[{conformance.ZERO_POINT}] node " in err
