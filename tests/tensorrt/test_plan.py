"""The build plan per release (features read from each release's double, flags from RULES): pure logic."""

from __future__ import annotations

from typing import Any

import pytest

from agent.backends.tensorrt.compat import ALWAYS, RULES, WEAK, features, plan_build, platform_notes, rules_for
from agent.util.errors import InputError


def test_features_follow_the_release(trt: Any) -> None:
    feat = features(trt)
    major = int(trt.__version__.split(".")[0])
    assert feat.explicit_batch == (major < 11)
    assert feat.strongly_typed == (major >= 10)
    assert feat.fp16_flag == feat.int8_flag == feat.calibrator == feat.platform_flags == (major < 11)
    assert feat.optimization_level == (trt.__version__ != "8.5.2")
    assert feat.progress_monitor == (major >= 10)


def test_the_release_table_agrees_with_the_api_lists(trt: Any) -> None:
    """Each row of RULES against the names the release binds (tests/tensorrt/api/trt-<release>.json)."""
    feat, rules = features(trt), rules_for(trt.__version__)
    assert not rules.explicit_batch or feat.explicit_batch  # a flag the table passes exists
    assert rules.precision_flags == feat.fp16_flag == feat.int8_flag
    assert (rules.typing == WEAK) == (not feat.strongly_typed)
    assert (rules.typing == ALWAYS) == (feat.strongly_typed and not feat.fp16_flag)
    assert rules.family == {"8": "8.x", "10": "10.x", "11": "11.x"}[trt.__version__.split(".")[0]]


def test_release_lookup() -> None:
    assert rules_for("12.0.1") is RULES[11] and rules_for("9.2.0") is RULES[8]
    with pytest.raises(InputError, match="TensorRT 8.5 and newer"):
        rules_for("7.2.3")


def test_plans(trt: Any) -> None:
    feat = features(trt)
    major = int(trt.__version__.split(".")[0])
    explicit = ["EXPLICIT_BATCH"] if major == 8 else []  # ignored from 10.0, gone in 11
    fp32 = plan_build(feat, "fp32", False, False, False)
    assert (fp32.network_flags, fp32.builder_flags, fp32.strongly_typed) == (explicit, [], major >= 11)
    fp16 = plan_build(feat, "fp16", False, False, False)
    assert (fp16.builder_flags, fp16.convert_fp16) == (([], True) if major >= 11 else (["FP16"], False))
    qdq = plan_build(feat, "int8", True, False, False, fast_fp16=True)
    assert qdq.calibrator is False and qdq.strongly_typed == (major >= 10)
    assert qdq.network_flags == explicit + (["STRONGLY_TYPED"] if major == 10 else [])
    assert qdq.builder_flags == ([] if major >= 10 else ["INT8", "FP16"])
    if major < 11:
        implicit = plan_build(feat, "int8", False, False, True, fast_fp16=True)
        assert implicit.builder_flags == ["INT8", "FP16"] and implicit.calibrator and not implicit.strongly_typed
    else:
        with pytest.raises(InputError, match="no implicit INT8"):
            plan_build(feat, "int8", False, False, True)


def test_fp16_typed_model(trt: Any) -> None:
    """8.x has no strong typing: the FP16 flag, or TensorRT builds FP32 kernels (NVIDIA/TensorRT#3057)."""
    major = int(trt.__version__.split(".")[0])
    typed16 = plan_build(features(trt), "fp16", False, True, False)
    if major == 8:
        assert typed16.builder_flags == ["FP16"] and not typed16.strongly_typed
    else:
        assert typed16.builder_flags == [] and typed16.strongly_typed
        assert ("STRONGLY_TYPED" in typed16.network_flags) == (major == 10)  # ignored on 11


def test_fp16_typed_model_int8_with_cache_never_gets_strong_typing_and_int8(trt: Any) -> None:
    feat = features(trt)
    if not feat.calibrator:
        return
    plan = plan_build(feat, "int8", False, True, True, fast_fp16=False)
    assert not plan.strongly_typed and "STRONGLY_TYPED" not in plan.network_flags
    assert plan.builder_flags == ["INT8", "FP16"] and plan.calibrator  # FP16 because the model's types are FP16


def test_int8_fp16_fallback_follows_the_gpu_and_the_option(trt: Any) -> None:
    feat = features(trt)
    if not feat.calibrator:
        return
    for fast, wanted, flags in ((True, True, ["INT8", "FP16"]), (True, False, ["INT8"]), (False, True, ["INT8"])):
        plan = plan_build(feat, "int8", False, False, True, fast_fp16=fast, int8_fp16=wanted)
        assert plan.builder_flags == flags
    slow = plan_build(feat, "int8", False, False, True, fast_fp16=False)
    assert slow.notes == ["this GPU has no fast FP16: the layers left unquantized run FP32"]


def test_refusals_and_notes(trt: Any) -> None:
    feat = features(trt)
    with pytest.raises(InputError, match="has Q/DQ nodes"):
        plan_build(feat, "fp16", True, False, False)
    with pytest.raises(InputError, match="builds fp32, fp16 or int8"):
        plan_build(feat, "best", False, False, False)
    on_dla = plan_build(feat, "fp32", False, False, False, dla_core=0).notes[0]
    if feat.version.startswith("11."):
        assert on_dla.startswith("DLA core 0: TensorRT 11.1 does not support the DLA")  # 11.0 to 11.3 have no DLA
    else:
        assert on_dla.startswith("DLA core 0 runs FP16 and INT8 only")
    assert platform_notes("fp16", False, True)[0].startswith("this GPU has no fast FP16")
    assert platform_notes("int8", True, None) == [] and platform_notes("fp32", False, False) == []
