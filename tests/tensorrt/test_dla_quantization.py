"""DLA and explicit quantization per release (defect 8): the DLA runs implicit INT8 only on 8.x
and 10.x, and 11.0 to 11.3 have no DLA at all (sources: the DLA comments of compat.RULES). A QDQ
model on the DLA gets a note saying its quantized layers fall back to the GPU, or an InputError
where TensorRT would fail the build (no GPU fallback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.backends.base import BuildRequest
from agent.backends.tensorrt.compat import features, plan_build, rules_for
from agent.util.errors import InputError

from .conftest import use_double
from .host_cuda import HostCudaLayer


def _major(trt: Any) -> int:
    return int(trt.__version__.split(".")[0])


def test_the_table_says_where_the_dla_runs_qdq(trt: Any) -> None:
    rules = rules_for(trt.__version__)
    assert rules.dla == (_major(trt) < 11)
    assert rules.dla_qdq is False  # no release of the table runs Q/DQ layers on the DLA


def test_a_qdq_model_on_the_dla_falls_back_to_the_gpu_and_says_so(trt: Any) -> None:
    feat = features(trt)
    plan = plan_build(feat, "int8", True, False, False, dla_core=0, gpu_fallback=True)
    dla = [n for n in plan.notes if n.startswith("DLA core 0")]
    assert len(dla) == 1
    if _major(trt) < 11:
        assert "does not run explicitly quantized (Q/DQ) layers on the DLA" in dla[0]
        assert "with GPU fallback they run on the GPU instead" in dla[0]
        assert "backend.tensorrt.int8_calibration: tensorrt" in dla[0]
    else:
        assert f"TensorRT {trt.__version__} does not support the DLA" in dla[0]


def test_a_qdq_model_on_the_dla_without_gpu_fallback_is_refused(trt: Any) -> None:
    with pytest.raises(
        InputError, match=r"DLA core 1: .*without GPU fallback \(backend.tensorrt.gpu_fallback: false\)"
    ):
        plan_build(features(trt), "int8", True, False, False, dla_core=1, gpu_fallback=False)


def test_implicit_int8_and_fp16_are_what_the_dla_runs(trt: Any) -> None:
    feat = features(trt)
    if _major(trt) >= 11:
        with pytest.raises(InputError, match="does not support the DLA"):
            plan_build(feat, "fp16", False, False, False, dla_core=0, gpu_fallback=False)
        return
    implicit = plan_build(feat, "int8", False, False, True, dla_core=0, gpu_fallback=False, fast_fp16=True)
    assert implicit.calibrator and not [n for n in implicit.notes if "DLA" in n]
    fp16 = plan_build(feat, "fp16", False, False, False, dla_core=0, gpu_fallback=False)
    assert not [n for n in fp16.notes if "DLA" in n]


@pytest.mark.parametrize("release", ["8.5.2", "10.3.0"])
def test_the_build_report_carries_the_note(
    release: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, qdq_path: str
) -> None:
    use_double(monkeypatch, release, dla_cores=2)
    from agent.backends.tensorrt.backend import TensorRTBackend

    request = BuildRequest(qdq_path, "int8", {"x": (2, 16)}, {"dla_core": 0, "gpu_fallback": True}, None)
    out = TensorRTBackend(cuda_factory=HostCudaLayer).build(request, str(tmp_path / "m.engine"))
    assert any("does not run explicitly quantized (Q/DQ) layers on the DLA" in n for n in out.notes)
