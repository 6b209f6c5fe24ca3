"""What differs between TensorRT 8.5, 8.6, 10.x and 11.x, and the build plan that follows from it.

Features are read from the ``tensorrt`` module itself (``hasattr`` on its enums and classes), never
from a version table, so a release that drops a name is handled by the same code path. The plan
is pure logic: tested directly, and it decides network flags, builder flags, calibrator use, FP16
conversion and the notes that say what could not be honoured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from agent.util.errors import InputError


@dataclass(frozen=True)
class Features:
    """The build-relevant names one TensorRT release binds."""

    version: str
    explicit_batch: bool  # NetworkDefinitionCreationFlag.EXPLICIT_BATCH (8.x, 10.x; gone in 11)
    strongly_typed: bool  # NetworkDefinitionCreationFlag.STRONGLY_TYPED (10.x+)
    fp16_flag: bool  # BuilderFlag.FP16 (gone in 11)
    int8_flag: bool  # BuilderFlag.INT8 (gone in 11)
    calibrator: bool  # IInt8EntropyCalibrator2 + IBuilderConfig.int8_calibrator (gone in 11)
    optimization_level: bool  # IBuilderConfig.builder_optimization_level (8.6+)
    progress_monitor: bool  # IProgressMonitor + IBuilderConfig.progress_monitor (10.x+)
    platform_flags: bool  # Builder.platform_has_fast_fp16 / _int8 (gone in 11)

    @property
    def requires_strong_typing(self) -> bool:
        """11.x: no precision flags at all; types come from the network."""
        return self.strongly_typed and not self.fp16_flag


def features(trt: Any) -> Features:
    flags, builder_flags, config = trt.NetworkDefinitionCreationFlag, trt.BuilderFlag, trt.IBuilderConfig
    return Features(
        version=str(trt.__version__),
        explicit_batch=hasattr(flags, "EXPLICIT_BATCH"),
        strongly_typed=hasattr(flags, "STRONGLY_TYPED"),
        fp16_flag=hasattr(builder_flags, "FP16"),
        int8_flag=hasattr(builder_flags, "INT8"),
        calibrator=hasattr(trt, "IInt8EntropyCalibrator2") and hasattr(config, "int8_calibrator"),
        optimization_level=hasattr(config, "builder_optimization_level"),
        progress_monitor=hasattr(trt, "IProgressMonitor") and hasattr(config, "progress_monitor"),
        platform_flags=hasattr(trt.Builder, "platform_has_fast_fp16")
        and hasattr(trt.Builder, "platform_has_fast_int8"),
    )


@dataclass
class BuildPlan:
    network_flags: List[str] = field(default_factory=list)
    builder_flags: List[str] = field(default_factory=list)
    calibrator: bool = False  # replay the calibration cache through IInt8EntropyCalibrator2
    convert_fp16: bool = False  # convert the ONNX model to FP16 types first (11.x)
    notes: List[str] = field(default_factory=list)


def plan_build(
    feat: Features,
    precision: str,
    model_qdq: bool,
    model_fp16: bool,
    calibration_cache: Optional[str],
    dla_core: Optional[int] = None,
) -> BuildPlan:
    """Decide how to build ``precision`` on this release; InputError if it cannot be built honestly."""
    plan = BuildPlan()
    if feat.explicit_batch:
        plan.network_flags.append("EXPLICIT_BATCH")
    if precision not in ("fp32", "fp16", "int8"):
        raise InputError(f"precision {precision}: the tensorrt backend builds fp32, fp16 or int8")
    if model_qdq and precision != "int8":
        raise InputError(
            f"precision {precision}: the model has Q/DQ nodes (an INT8 model); build it as int8 or give the FP32 model"
        )
    typed = model_qdq or model_fp16
    if precision == "int8":
        if not model_qdq and not calibration_cache:
            raise InputError("precision int8: give a QDQ model (calibrate first) or a TensorRT calibration cache")
        if not model_qdq and not feat.calibrator:
            raise InputError(
                f"precision int8: TensorRT {feat.version} has no implicit INT8 calibration; build from the QDQ model"
            )
        if not (model_qdq and feat.strongly_typed):  # strongly typed: INT8 comes from the Q/DQ nodes
            plan.builder_flags.append("INT8")
            plan.calibrator = not model_qdq
    elif precision == "fp16" and not model_fp16:
        if feat.fp16_flag:
            plan.builder_flags.append("FP16")
        else:
            plan.convert_fp16 = typed = True
    if feat.requires_strong_typing or (typed and feat.strongly_typed):
        plan.network_flags.append("STRONGLY_TYPED")
    if dla_core is not None and precision == "fp32":
        plan.notes.append(f"DLA core {dla_core} runs FP16 and INT8 only: an fp32 build runs on the GPU (GPU fallback)")
    return plan


def platform_notes(precision: str, fast_fp16: Optional[bool], fast_int8: Optional[bool]) -> List[str]:
    """What the GPU lacks for ``precision`` (None: the release cannot tell)."""
    if precision == "int8" and fast_int8 is False:
        return [
            "this GPU has no fast INT8 (platform_has_fast_int8 is False): the engine is INT8 as asked, expect little "
            "or no speed-up"
        ]
    if precision == "fp16" and fast_fp16 is False:
        return [
            "this GPU has no fast FP16 (platform_has_fast_fp16 is False): the engine is FP16 as asked, expect little "
            "or no speed-up"
        ]
    return []
