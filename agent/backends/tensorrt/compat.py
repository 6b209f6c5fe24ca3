"""What differs between TensorRT 8.5, 8.6, 10.x and 11.x, and the build plan that follows from it.

Two sources, each for what it is good at. :data:`RULES` is the one table of how each release
family takes precision (network creation flags, strong typing, builder precision flags), one row
per family with the source it was read from; :func:`features` reads which API names the installed
module binds (calibrator, optimization levels, progress monitor), with ``hasattr``. The plan is
pure logic: tested per release against the double, it decides network flags, builder flags,
calibrator use, FP16 conversion and the notes that say what could not be honoured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from agent.util.errors import InputError

# How a release family types its network.
WEAK = "weak"  # precision comes from builder flags; no strong typing exists
OPTIONAL = "optional"  # STRONGLY_TYPED is a creation flag; a strongly typed network refuses precision flags
ALWAYS = "always"  # every network is strongly typed; the flag is deprecated and ignored


@dataclass(frozen=True)
class ReleaseRules:
    """How one TensorRT release family takes precision (a row of :data:`RULES`)."""

    family: str
    explicit_batch: bool  # pass NetworkDefinitionCreationFlag.EXPLICIT_BATCH when creating the network
    typing: str  # WEAK, OPTIONAL or ALWAYS
    precision_flags: bool  # BuilderFlag.FP16 / INT8 exist (and are honoured on weakly typed networks)
    dla: bool  # the release builds layers for the DLA at all
    dla_qdq: bool  # the DLA runs explicitly quantized (Q/DQ) layers; False: DLA INT8 is implicit (calibration) only


# The one table of flags and typing per release family. Each row names its sources (NVIDIA/TensorRT
# at the release tag; line numbers are those of include/NvInfer.h at that tag).
RULES: Dict[int, ReleaseRules] = {
    # 8.5.2 / 8.6.1: NvInfer.h (8.5.2 l.9332-9344, v8.6.1 l.9926-9938) has EXPLICIT_BATCH and the no-op
    # EXPLICIT_PRECISION only: no strong typing. The ONNX parser needs an explicit batch network (dynamic
    # shapes "require" kEXPLICIT_BATCH, same lines). Precision comes from BuilderFlag only: an FP16-typed
    # ONNX without BuilderFlag.FP16 builds FP32 kernels (NVIDIA/TensorRT#3057), and kINT8 is "Int8 layer
    # selection, with FP32 fallback with FP16 fallback if kFP16 also specified" (BuilderFlag docs).
    # DLA (8.5.2 / 8.6.1): no explicit quantization. The TensorRT 8 developer guide, "Working with DLA", says DLA
    # does not support explicit quantization (NVIDIA's own translation of that chapter: developer.nvidia.com/zh-cn/
    # blog/tensorrt-deep-learning-accelerator-cn); NVIDIA/TensorRT#2222 (maintainers, 2022-08): QAT (Q/DQ) models
    # do not run on the DLA, converted to implicit quantization they do. NVIDIA-AI-IOT/cuDLA-samples (README and
    # export/README.md at dffbd62, TensorRT 8.6 on Orin) therefore turns its QAT model into a model without Q/DQ
    # plus a calibration cache (export/qdq_translator) before the DLA build; a Q/DQ layer in a DLA build without
    # GPU fallback fails: "layer '.../_input_quantizer/Constant_1_output_0' is not supported on DLA"
    # (cuDLA-samples#19). With GPU_FALLBACK, layers the DLA cannot run go to the GPU (guide, "GPU Fallback Mode").
    8: ReleaseRules("8.x", explicit_batch=True, typing=WEAK, precision_flags=True, dla=True, dla_qdq=False),
    # 10.3.0 / 10.13.3: kEXPLICIT_BATCH is "Ignored because networks are always explicit batch",
    # deprecated in 10.0 (v10.3.0 l.9611-9614, v10.13.3 l.10472-10475), so it is not passed. kSTRONGLY_TYPED
    # (v10.3.0 l.9616-9620): types follow the network, layer precisions may not be set; the developer guide
    # ("Strong Typing") and Polygraphy (tools/Polygraphy/polygraphy/backend/trt/loader.py, CreateNetwork,
    # v10.3.0) treat it as exclusive of the FP16/INT8/BF16 builder flags, which TensorRT rejects on such a
    # network. kFP16/kINT8 remain (deprecated from 10.12, v10.13.3 l.8848-8854) for weakly typed networks.
    # DLA (10.3.0 / 10.13.3): still implicit INT8 only. NVIDIA/Deep-Learning-Accelerator-SW tools/qdq-translator
    # (README at ea61780, JetPack 6.0 / DLA 3.14.1) is the same Q/DQ-to-calibration-cache translation for DLA
    # builds, and NVIDIA/Model-Optimizer#1661 (2026) states that "DLA still only supports IQ" (implicit
    # quantization). The ONNX parser's kENABLE_UINT8_AND_ASYMMETRIC_QUANTIZATION_DLA (NVIDIA/TensorRT CHANGELOG.md,
    # 10.11.0; "DLA version >= 3.16", include/NvOnnxParser.h v10.16) is not in 10.3 and is not set here. 10.13 is
    # JetPack 7 on Jetson Thor, which has no DLA (TensorRT 11.4.1 docs, "Strongly Typed Networks for DLA").
    10: ReleaseRules("10.x", explicit_batch=False, typing=OPTIONAL, precision_flags=True, dla=True, dla_qdq=False),
    # 11.1: EXPLICIT_BATCH is gone; kSTRONGLY_TYPED is "Deprecated in TensorRT 11.0. Strongly typed mode is
    # always enabled ... ignored" (v11.1 l.11464-11471); BuilderFlag has no FP16/INT8 (tests/tensorrt/api/
    # trt-11.1.json) and the calibrator classes are gone: precision comes from the model's types and Q/DQ.
    # DLA: "DLA is not supported in TensorRT 11.0 or 11.1" (TensorRT 11.1.0 docs, "Working with DLA"; the 11.3.0
    # docs add 11.2 and 11.3). It returns in 11.4.1 on Jetson AGX Orin (JetPack 7.2.2), strongly typed, with Q/DQ
    # as its INT8 (11.4.1 docs, "Strongly Typed Networks for DLA"): that release is not covered by this row.
    11: ReleaseRules("11.x", explicit_batch=False, typing=ALWAYS, precision_flags=False, dla=False, dla_qdq=False),
}


def rules_for(version: str) -> ReleaseRules:
    """The row of :data:`RULES` for ``version``: its major, or the nearest older family; InputError below 8."""
    major = int(str(version).split(".")[0])
    known = [m for m in sorted(RULES) if m <= major]
    if not known:
        raise InputError(f"TensorRT {version}: the tensorrt backend supports TensorRT 8.5 and newer")
    return RULES[known[-1]]


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
    strongly_typed: bool = False  # the network is strongly typed (by the flag on 10.x, always on 11.x)
    calibrator: bool = False  # replay the calibration cache through IInt8EntropyCalibrator2
    convert_fp16: bool = False  # convert the ONNX model to FP16 types first (11.x)
    notes: List[str] = field(default_factory=list)


def plan_build(
    feat: Features,
    precision: str,
    model_qdq: bool,
    model_fp16: bool,
    implicit_int8: bool,
    dla_core: Optional[int] = None,
    fast_fp16: Optional[bool] = None,
    int8_fp16: bool = True,
    gpu_fallback: bool = True,
) -> BuildPlan:
    """Decide how to build ``precision`` on this release; InputError if it cannot be built honestly.

    ``fast_fp16`` is ``Builder.platform_has_fast_fp16`` (None: the release cannot tell); with
    ``int8_fp16`` an INT8 build on a weakly typed network also sets FP16, so that the layers left
    unquantized run FP16 rather than FP32 where the GPU has fast FP16. ``gpu_fallback`` is
    backend.tensorrt.gpu_fallback: what TensorRT does with layers the DLA cannot run.
    """
    rules = rules_for(feat.version)
    plan = BuildPlan()
    if int(feat.version.split(".")[0]) not in RULES:
        plan.notes.append(f"TensorRT {feat.version} is not in the release table: built with the {rules.family} rules")
    if rules.explicit_batch:
        plan.network_flags.append("EXPLICIT_BATCH")
    if precision not in ("fp32", "fp16", "int8"):
        raise InputError(f"precision {precision}: the tensorrt backend builds fp32, fp16 or int8")
    if model_qdq and precision != "int8":
        raise InputError(
            f"precision {precision}: the model has Q/DQ nodes (an INT8 model); build it as int8 or give the FP32 model"
        )
    if precision == "int8":
        if not model_qdq and not implicit_int8:
            raise InputError("precision int8: give a QDQ model (calibrate first) or a TensorRT calibration cache")
        if not model_qdq and not feat.calibrator:
            raise InputError(
                f"precision int8: TensorRT {feat.version} has no implicit INT8 calibration; build from the QDQ model"
            )
        # Implicit INT8 (a calibrator) needs a weakly typed network, even for an FP16-typed model on 10.x.
        plan.strongly_typed = rules.typing == ALWAYS or (rules.typing == OPTIONAL and model_qdq)
        if not plan.strongly_typed:
            plan.builder_flags.append("INT8")
            plan.calibrator = not model_qdq
            if model_fp16 or (int8_fp16 and fast_fp16):
                plan.builder_flags.append("FP16")  # unquantized layers: FP16 fallback instead of FP32
            elif int8_fp16 and fast_fp16 is False:
                plan.notes.append("this GPU has no fast FP16: the layers left unquantized run FP32")
        elif not model_fp16:
            plan.notes.append(
                "strongly typed INT8: the layers outside Q/DQ pairs run in the model's float type (FP32); precision "
                "flags are refused on strongly typed networks"
            )
    elif precision == "fp16":
        if model_fp16 and rules.typing != WEAK:
            plan.strongly_typed = True  # the model's FP16 types are the precision
        elif rules.precision_flags:
            plan.builder_flags.append("FP16")  # weakly typed: FP16 types alone still build FP32 kernels
        else:
            plan.convert_fp16 = plan.strongly_typed = True
    else:
        plan.strongly_typed = rules.typing == ALWAYS or (rules.typing == OPTIONAL and model_fp16)
    if plan.strongly_typed and rules.typing == OPTIONAL:
        plan.network_flags.append("STRONGLY_TYPED")
    if dla_core is not None:
        plan.notes += dla_notes(feat.version, rules, precision, model_qdq, dla_core, gpu_fallback)
    return plan


def dla_notes(
    version: str, rules: ReleaseRules, precision: str, model_qdq: bool, core: int, gpu_fallback: bool
) -> List[str]:
    """What TensorRT does with a DLA build of ``precision`` (see the DLA comments of :data:`RULES`);
    InputError where it would fail the build (no GPU fallback for what the DLA cannot run)."""
    if not rules.dla:
        what = f"DLA core {core}: TensorRT {version} does not support the DLA, so no layer can run on it"
        fix = "leave backend.tensorrt.dla_core unset, or build with a TensorRT release that has DLA support (8.x, 10.x)"
    elif precision == "int8" and model_qdq and not rules.dla_qdq:
        what = (
            f"DLA core {core}: TensorRT {version} does not run explicitly quantized (Q/DQ) layers on the DLA (INT8 on "
            "the DLA is implicit quantization, from a calibration cache), so the quantized layers cannot run on it"
        )
        fix = (
            "for INT8 on the DLA, build the FP32 model as int8 with backend.tensorrt.int8_calibration: tensorrt "
            "(TensorRT's own calibrator writes the cache)"
        )
    elif precision == "fp32":
        return [f"DLA core {core} runs FP16 and INT8 only: an fp32 build runs on the GPU (GPU fallback)"]
    else:
        return []
    if not gpu_fallback:
        raise InputError(f"{what}; without GPU fallback (backend.tensorrt.gpu_fallback: false) the build fails: {fix}")
    return [f"{what}: with GPU fallback they run on the GPU instead; {fix}"]


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
