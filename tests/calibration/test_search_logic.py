"""The search's pure helpers, and the gated FP16 fallback of best with a backend that builds FP16
(ONNX Runtime running the model converted by agent.backends.tensorrt.fp16, a real FP16 graph on the CPU)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.backends.base import BuildOutput, BuildRequest
from agent.backends.onnxruntime import OnnxRuntimeBackend
from agent.config.sections import Config
from calibration.artefacts import batch_size_for, settings_folder
from calibration.calibrators import QuantizeSettings, fit_to_memory
from calibration.promote import fallback_precision
from calibration.search import exclusion_limit, exclusion_steps, method_order


def test_method_order_starts_with_the_configured_one() -> None:
    assert method_order("percentile") == ["percentile", "minmax", "entropy"]


@pytest.mark.parametrize("limit, steps", [(0, []), (1, [1]), (2, [1, 2]), (5, [1, 2, 4, 5]), (8, [1, 2, 4, 8])])
def test_exclusion_steps_double_up_to_the_limit(limit: int, steps: list) -> None:
    assert exclusion_steps(limit) == steps


def test_exclusion_limit_takes_the_tighter_cap() -> None:
    assert exclusion_limit(8, 16, 0.25) == 2
    assert exclusion_limit(100, 16, 0.25) == 16
    assert exclusion_limit(3, 16, 0.25) == 0


def test_fit_to_memory_keeps_evenly_spaced_batches() -> None:
    batches = [np.full((1,), i) for i in range(10)]
    kept = fit_to_memory(batches, batch_bytes=100, budget_bytes=350)
    assert [int(b[0]) for b in kept] == [0, 3, 6]
    assert len(fit_to_memory(batches, 100, 10_000)) == 10
    assert len(fit_to_memory(batches, 100, 1)) == 1


def test_batch_sizes_are_equal_and_small() -> None:
    assert batch_size_for(159, None) == 3 and batch_size_for(160, None) == 4 and batch_size_for(7, None) == 1
    assert batch_size_for(10, 8) == 8


def test_settings_folders_differ_when_settings_do() -> None:
    names = {
        settings_folder(s)
        for s in (
            QuantizeSettings("minmax"),
            QuantizeSettings("minmax", per_channel=False),
            QuantizeSettings("minmax", symmetric_activations=False),
            QuantizeSettings("minmax", exclude=("a",)),
            QuantizeSettings("minmax", exclude=("b",)),
            QuantizeSettings("percentile", percentile=99.9),
            QuantizeSettings("percentile"),
        )
    }
    assert len(names) == 7


def test_fallback_precision_says_why_fp32() -> None:
    assert fallback_precision(OnnxRuntimeBackend(), "fp32") == ("fp32", "")
    precision, why = fallback_precision(OnnxRuntimeBackend(), "fp16")
    assert precision == "fp32" and "does not build" in why


class Fp16CapableBackend(OnnxRuntimeBackend):
    """ONNX Runtime, plus FP16 engines made by agent.backends.tensorrt.fp16 (the TensorRT 11 conversion)."""

    precisions = ("fp32", "fp16", "int8")

    def build(self, request: BuildRequest, engine_path: str) -> BuildOutput:
        if request.precision != "fp16":
            return super().build(request, engine_path)
        from agent.backends.tensorrt.fp16 import convert_to_fp16

        converted = engine_path + ".fp16.onnx"
        convert_to_fp16(request.model_path, converted)
        super().build(BuildRequest(converted, "fp32", request.input_shapes, request.options), engine_path)
        return BuildOutput(precision="fp16")


def test_best_falls_back_to_a_gated_fp16_engine(demo_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.build import engine as building
    from calibration.collect import collect

    black = tmp_path / "black"
    black.mkdir()
    for i in range(20):
        cv2.imwrite(str(black / f"{i}.png"), np.zeros((96, 96, 3), np.uint8))
    demo_cfg.calibration["dedup_distance"] = 0
    demo_cfg.gate["mixed_precision"] = False
    config = Config.from_node(demo_cfg)
    collect(config.calibration, config.source, config.paths.calibration_dir, str(black))
    monkeypatch.setattr(building, "get_backend", lambda name: Fp16CapableBackend())
    report = building.build(config, "best").to_json()
    assert report["built_precision"] == "fp16" and report["promoted"]
    assert "FP16 was built and passed" in report["decision"]
    attempts = report["gate"]["attempts"]
    assert [a["precision"] for a in attempts] == ["int8", "int8", "int8", "fp16"]
    assert attempts[-1]["passed"] and attempts[-1]["per_class_recall"]["face"]["delta_pp"] == 0.0
    assert report["gate"]["passed"] and not report["gate"]["int8_passed"]


def test_histogram_calibrators_are_always_memory_capped() -> None:
    from calibration.calibrators import needs_memory_cap

    assert needs_memory_cap("entropy") and needs_memory_cap("percentile")
