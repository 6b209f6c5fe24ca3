"""The build plan per release (features read from each release's double): pure logic, no build."""

from __future__ import annotations

from typing import Any

import pytest

from agent.backends.tensorrt.compat import features, plan_build, platform_notes
from agent.util.errors import InputError


def test_features_follow_the_release(trt: Any) -> None:
    feat = features(trt)
    major = int(trt.__version__.split(".")[0])
    assert feat.explicit_batch == (major < 11)
    assert feat.strongly_typed == (major >= 10)
    assert feat.fp16_flag == feat.int8_flag == feat.calibrator == feat.platform_flags == (major < 11)
    assert feat.optimization_level == (trt.__version__ != "8.5.2")
    assert feat.progress_monitor == (major >= 10)
    assert feat.requires_strong_typing == (major >= 11)


def test_plans(trt: Any) -> None:
    feat = features(trt)
    major = int(trt.__version__.split(".")[0])
    explicit = ["EXPLICIT_BATCH"] if major < 11 else []
    strong = ["STRONGLY_TYPED"] if major >= 11 else []
    fp32 = plan_build(feat, "fp32", False, False, None)
    assert (fp32.network_flags, fp32.builder_flags) == (explicit + strong, [])
    fp16 = plan_build(feat, "fp16", False, False, None)
    assert (fp16.builder_flags, fp16.convert_fp16) == (([], True) if major >= 11 else (["FP16"], False))
    typed16 = plan_build(feat, "fp16", False, True, None)  # an FP16-typed model: strong typing from 10.x
    assert typed16.builder_flags == [] and ("STRONGLY_TYPED" in typed16.network_flags) == (major >= 10)
    qdq = plan_build(feat, "int8", True, False, None)
    assert qdq.calibrator is False
    assert (qdq.builder_flags, "STRONGLY_TYPED" in qdq.network_flags) == (
        ([], True) if major >= 10 else (["INT8"], False)
    )
    if major < 11:
        implicit = plan_build(feat, "int8", False, False, "calib.cache")
        assert implicit.builder_flags == ["INT8"] and implicit.calibrator
    else:
        with pytest.raises(InputError, match="no implicit INT8"):
            plan_build(feat, "int8", False, False, "calib.cache")


def test_refusals_and_notes(trt: Any) -> None:
    feat = features(trt)
    with pytest.raises(InputError, match="has Q/DQ nodes"):
        plan_build(feat, "fp16", True, False, None)
    with pytest.raises(InputError, match="builds fp32, fp16 or int8"):
        plan_build(feat, "best", False, False, None)
    assert (
        plan_build(feat, "fp32", False, False, None, dla_core=0)
        .notes[0]
        .startswith("DLA core 0 runs FP16 and INT8 only")
    )
    assert platform_notes("fp16", False, True)[0].startswith("this GPU has no fast FP16")
    assert platform_notes("int8", True, None) == [] and platform_notes("fp32", False, False) == []
