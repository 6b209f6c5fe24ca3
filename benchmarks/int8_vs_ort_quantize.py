"""This project's INT8 model for ONNX Runtime (CPU) against ONNX Runtime's own ``quantize_static``
defaults, on the ResNet-18-shaped model: the same FP32 model and calibration frames, both built
with the ONNX Runtime backend, measured interleaved in one run. The CPU's INT8 instruction set
(from /proc/cpuinfo) is printed next to the figures: VNNI decides how much INT8 gains on a CPU.

Run: python -m benchmarks.int8_vs_ort_quantize [--rounds N] [--no-write]
Writes the "int8-vs-ort-quantize" section of docs/benchmarks.md.
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agent.model.info import InputSpec  # noqa: E402
from agent.model.preprocess import make_batch  # noqa: E402
from benchmarks.bench_int8 import IMAGENET, THREADS, build_engine, photos, variants  # noqa: E402
from benchmarks.interleave import interleaved  # noqa: E402
from benchmarks.report import main_in_tempdir  # noqa: E402

# /proc/cpuinfo flag -> name, best first (Linux arch/x86/include/asm/cpufeatures.h spells them so).
INT8_ISAS = (("amx_int8", "AMX-INT8"), ("avx512_vnni", "AVX-512 VNNI"), ("avx_vnni", "AVX-VNNI"))


def int8_isa(cpuinfo: str) -> str:
    """The x86 INT8 dot-product extensions the CPU flags name, or 'none' with the widest SIMD."""
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            flags |= set(line.split(":", 1)[-1].split())
    found = [name for flag, name in INT8_ISAS if flag in flags]
    if found:
        return ", ".join(found)
    widest = next((name for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2")) if flag in flags), "no AVX2")
    return f"none (no VNNI; {widest})"


def _read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _quantize_count(path: str) -> int:
    import onnx

    return collections.Counter(n.op_type for n in onnx.load(path).graph.node)["QuantizeLinear"]


def run(workdir: Path, rounds: int) -> Dict[str, Any]:
    import onnx
    from onnxruntime import quantization as q

    from benchmarks.resnet import resnet18
    from calibration.calibrators import QuantizeSettings, make_reader, quantize_qdq, symmetric_for

    fp32 = str(workdir / "resnet18.onnx")
    onnx.save(resnet18(seed=0), fp32)
    spec = InputSpec(
        "input", 224, 224, 3, "NCHW", 1, "RGB", "stretch", IMAGENET["scale"], tuple(IMAGENET["mean"]),
        tuple(IMAGENET["std"]), False,
    )  # fmt: skip
    batches = [make_batch([f], spec)[0] for f in variants(photos())[:16]]
    ours, theirs = str(workdir / "ours.qdq.onnx"), str(workdir / "ort-default.qdq.onnx")
    settings = QuantizeSettings("minmax", symmetric_activations=symmetric_for("onnxruntime"))
    quantize_qdq(fp32, ours, "input", batches, settings)
    q.quantize_static(fp32, theirs, make_reader("input", batches))  # every default: what a user gets
    shapes = {"input": (1, 3, 224, 224)}
    engines = {
        "ort_default": build_engine(theirs, "int8", shapes, str(workdir / "theirs.engine.onnx")),
        "ours": build_engine(ours, "int8", shapes, str(workdir / "ours.engine.onnx")),
    }
    return {
        "cpu_int8_isa": int8_isa(_read_cpuinfo()),
        "settings": settings.describe(),
        "quantize_linear": {"ours": _quantize_count(ours), "ort_default": _quantize_count(theirs)},
        "calibration_frames": len(batches),
        "timing": interleaved(engines, {"input": batches[0]}, rounds=rounds),
    }


def markdown(r: Dict[str, Any]) -> str:
    t = r["timing"]
    base, ours = t["engines"]["ort_default"], t["engines"]["ours"]
    ratio = ours["speedup"]
    lines: List[str] = [
        "## INT8 for ONNX Runtime vs ONNX Runtime's `quantize_static` defaults — `benchmarks/int8_vs_ort_quantize.py`",
        "",
        "Method: the ResNet-18-shaped model (1x3x224x224, random weights) quantized twice on the same "
        f"{r['calibration_frames']} calibration frames (scikit-image photos, mirrors and crops): by this project "
        "for the onnxruntime backend (MinMax, per-channel symmetric INT8 weights, asymmetric UINT8 activations, "
        "Relu/Clip folded into the range before them) and by `onnxruntime.quantization.quantize_static` with every "
        f"default. Both built with the ONNX Runtime backend ({THREADS} intra-op threads) and measured "
        f"**interleaved in one run**: {t['rounds']} rounds of about {t['round_s']} s each, order alternating; "
        "latency is 1000 / the median round's throughput, the ratio the median of the per-round ratios.",
        "",
        f"CPU INT8 instruction set: **{r['cpu_int8_isa']}**.",
        "",
        "| model | QuantizeLinear nodes | median latency | throughput |",
        "|---|---|---|---|",
        f"| ONNX Runtime defaults | {r['quantize_linear']['ort_default']} | {base['latency_ms']} ms "
        f"| {base['throughput_per_s']}/s |",
        f"| this project (onnxruntime target) | {r['quantize_linear']['ours']} | {ours['latency_ms']} ms "
        f"| {ours['throughput_per_s']}/s |",
        "",
        f"Ratio (this project / ONNX Runtime defaults, throughput): **{ratio}x** (per-round range "
        f"{ours['speedup_min']}-{ours['speedup_max']}x; load average {t['loadavg_1m_before']} before, "
        f"{t['loadavg_1m_after']} after). Target: >= 1.0x: {'met' if ratio >= 1.0 else 'NOT met'}.",
    ]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    return main_in_tempdir(
        argv, __doc__ or "", "int8-vs-ort-quantize", lambda folder, args: run(folder, args.rounds), markdown, rounds=15
    )


if __name__ == "__main__":
    sys.exit(main())
