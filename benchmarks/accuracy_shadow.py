"""Accuracy benchmarks: how long `edge-agent check` takes on the ONet + LFW set, and what shadow
evaluation costs the inference loop.

Method: the inference loop is `Pipeline.infer_frames([frame])` on the 200 LFW crops (96x96 frames,
ONet FP32 in ONNX Runtime, 1 intra-op thread) followed by `ShadowEvaluator.offer`. Three loops take
turns in short rounds (order alternating, so machine noise hits them alike): no shadow; shadow at
the defaults (accuracy.shadow_fraction 0.02, shadow_max_per_s 1); and a saturating shadow
(every frame offered, no rate limit: the side thread runs the reference as fast as it can and
drops what arrives while busy). The reference runs on its own thread with 1 intra-op thread.

Run: python -m benchmarks.accuracy_shadow [--rounds N] [--round-s S] [--no-write]
Writes the "accuracy" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agent.accuracy import check as accuracy  # noqa: E402
from agent.accuracy.shadow import ShadowEvaluator  # noqa: E402
from agent.build import engine as building  # noqa: E402
from agent.config.load import load_config  # noqa: E402
from agent.config.sections import Config  # noqa: E402
from agent.demo import sample as demo  # noqa: E402
from agent.sources.frames import Frame  # noqa: E402
from benchmarks.report import output_options, publish  # noqa: E402


def loop_rate(run: accuracy.EngineRun, frames: List[Frame], shadow: Optional[ShadowEvaluator], seconds: float) -> float:
    """Frames per second of the inference loop over at least ``seconds``."""
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        frame = frames[count % len(frames)]
        result = run.pipeline.infer_frames([frame])[0]
        if shadow is not None:
            shadow.offer(frame, result)
        count += 1
    return count / (time.perf_counter() - start)


def measure(rounds: int, round_s: float) -> Dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-accuracy-"))
    cfg = Config.from_node(load_config(str(demo.prepare(workdir)), ["backend.onnxruntime.intra_op_threads=1"]))
    run = building.open_engine(cfg)
    checks = [accuracy.run_check(cfg, run).duration_s or 0.0 for _ in range(3)]  # run_check sets duration_s
    images, _ = demo.lfw_crops()
    frames = [Frame(np.repeat(im[:, :, None], 3, axis=2), i, 0.0, "lfw") for i, im in enumerate(images)]
    shadows = {
        "none": None,
        "default (2%, <= 1/s)": ShadowEvaluator(
            accuracy.open_reference(cfg.model, cfg.backend, threads=1).pipeline,
            run.labels,
            "classification",
            0.02,
            1.0,
            500,
        ),
        "saturating (100%, no limit)": ShadowEvaluator(
            accuracy.open_reference(cfg.model, cfg.backend, threads=1).pipeline,
            run.labels,
            "classification",
            1.0,
            1e9,
            500,
        ),
    }
    for shadow in shadows.values():
        if shadow is not None:
            shadow.start()
    per_round: Dict[str, List[float]] = {name: [] for name in shadows}
    load_before = os.getloadavg()[0]
    try:
        for shadow in shadows.values():
            loop_rate(run, frames, shadow, 0.3)  # warm-up
        for number in range(rounds):
            order = list(shadows) if number % 2 == 0 else list(shadows)[::-1]
            for name in order:
                per_round[name].append(loop_rate(run, frames, shadows[name], round_s))
    finally:
        for shadow in shadows.values():
            if shadow is not None:
                shadow.stop()
    base = per_round["none"]
    idle = {"handled": 0, "agreement": None}
    snapshots = {name: shadow.snapshot() if shadow is not None else idle for name, shadow in shadows.items()}
    loops = {
        name: {
            "loop_fps": round(statistics.median(values), 1),
            "vs_none": round(statistics.median([v / b for v, b in zip(values, base)]), 3),
            "shadow_evaluated": snapshots[name]["handled"],
            "shadow_agreement": snapshots[name]["agreement"],
        }
        for name, values in per_round.items()
    }
    return {
        "check_200_samples_s": round(statistics.median(checks), 3),
        "rounds": rounds,
        "round_s": round_s,
        "loadavg_1m_before": round(load_before, 2),
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
        "loops": loops,
    }


def markdown(result: Dict[str, Any]) -> str:
    rows = [
        "| inference loop | loop frames/s (median) | ratio to no shadow (median of rounds) "
        "| frames the reference evaluated | agreement |",
        "|---|---|---|---|---|",
    ]
    for name, r in result["loops"].items():
        agreement = "-" if r["shadow_agreement"] is None else f"{r['shadow_agreement']:.3f}"
        rows.append(f"| {name} | {r['loop_fps']} | {r['vs_none']} | {r['shadow_evaluated']} | {agreement} |")
    return (
        "## Accuracy check and shadow evaluation (`benchmarks/accuracy_shadow.py`)\n\n"
        "`edge-agent check` on the demo set (MTCNN ONet FP32, ONNX Runtime, 1 thread, 200 LFW crops read from PNG): "
        f"**{result['check_200_samples_s']} s** (median of 3, including image reads and the per-sample outcomes).\n\n"
        "Shadow evaluation's cost to the inference loop (ONet FP32, 1 intra-op thread; the reference on the shadow "
        f"thread, 1 intra-op thread); {result['rounds']} interleaved rounds of {result['round_s']} s each, "
        f"load average {result['loadavg_1m_before']} before and {result['loadavg_1m_after']} after:\n\n"
        + "\n".join(rows)
        + "\n\nThe saturating row is the worst case (the side thread never idles): it shows what the reference costs "
        "when it competes for the cores; the default row is what the configured rate limit leaves of that."
    )


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--round-s", type=float, default=2.0)
    output_options(parser)
    args = parser.parse_args(argv)
    result = measure(args.rounds, args.round_s)
    print(json.dumps(result, indent=2))
    publish("accuracy", markdown(result), args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
