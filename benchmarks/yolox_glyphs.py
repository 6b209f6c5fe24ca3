"""YOLOX (ddddocr's common_det.onnx) on glyphs drawn at known places on real photos.

Each of dlib's nine labeled face photos, resized to 640x480 and blurred (sigma 2) so that its own
edges compete less, gets four glyphs (black letters on a white patch) at fixed places; the drawn
text extents are the truth, written as a dlib XML spot set. `edge-agent check`'s evaluation
(the `yolox` decoder, top-left letterbox with pad 114, BGR 0-255) gives recall and precision at
IoU 0.5; the best IoU of each drawn glyph with any detection is reported too.

Run: python -m benchmarks.yolox_glyphs [--no-write]   (Python >= 3.10: the ddddocr wheel)
Writes the "yolox-glyphs" section of docs/benchmarks.md.
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

from agent.accuracy.check import load_spot_set, open_reference, run_check  # noqa: E402
from agent.config.load import load_config  # noqa: E402
from agent.config.sections import Config  # noqa: E402
from agent.model.tasks.detection import box_iou  # noqa: E402
from benchmarks.report import main_in_tempdir  # noqa: E402
from tests.detection_int8.faces import FACES  # noqa: E402

YOLOX = "pkg:ddddocr/common_det.onnx"
PLACES = [(60, 120), (300, 100), (480, 300), (150, 380)]
TEXTS = ["AKR7", "B3XQ", "M9TW", "H2PZ", "D5LV", "F8NC", "G4JU", "S6EY", "K1OW"]


def glyph_set(target: Path) -> Path:
    """Photos with four glyphs each, and their boxes in dlib XML (left, top, width, height)."""
    import cv2

    target.mkdir(parents=True, exist_ok=True)
    rows = ["<dataset><images>"]
    for photo_path, text in zip(sorted(FACES.glob("*.jpg")), TEXTS):
        image = cast(np.ndarray, cv2.imread(str(photo_path)))  # a packaged photo
        photo = cv2.GaussianBlur(cv2.resize(image, (640, 480)), (0, 0), 2)
        rows.append(f"<image file='{photo_path.stem}.png'>")
        for (x, y), glyph in zip(PLACES, text):
            (w, h), _ = cv2.getTextSize(glyph, cv2.FONT_HERSHEY_SIMPLEX, 2.0, 5)
            cv2.rectangle(photo, (x - 12, y - 60), (x + 62, y + 14), (255, 255, 255), -1)
            cv2.putText(photo, glyph, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (0, 0, 0), 5)
            rows.append(f"<box top='{y - h}' left='{x}' width='{w}' height='{h}'/>")
        rows.append("</image>")
        cv2.imwrite(str(target / f"{photo_path.stem}.png"), photo)
    rows.append("</images></dataset>")
    (target / "glyphs.xml").write_text("\n".join(rows), encoding="utf-8")
    return target / "glyphs.xml"


def run(workdir: Path) -> Dict[str, Any]:
    labels = glyph_set(workdir / "glyphs")
    data = {
        "model": {
            "path": YOLOX,
            "task": "detection",
            "labels": ["glyph"],
            "input": {"color": "BGR", "resize": "letterbox", "letterbox_align": "top_left", "pad_value": 114},
            "detection": {"format": "yolox", "conf_threshold": 0.1, "match_iou": 0.5},
        },
        "backend": {"name": "onnxruntime", "onnxruntime": {"intra_op_threads": 2}},
        "accuracy": {"spot_labels": str(labels), "format": "dlib", "default_label": "glyph"},
        "paths": {"state_dir": str(workdir / "state")},
        "mqtt": {"enabled": False},
    }
    path = workdir / "yolox.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    config = Config.from_node(load_config(str(path)))
    run = open_reference(config.model, config.backend)
    report = run_check(config, run).to_json()
    spot = load_spot_set(config.accuracy, "detection", ["glyph"])
    best: List[float] = []
    for sample, result in zip(spot.samples, run.pipeline.infer_frames(spot.frames)):
        found = np.asarray([d["box"] for d in result["detections"]], dtype=np.float64).reshape(-1, 4)
        truth = sample.truth.pixel_boxes(640, 480)
        best += (box_iou(truth, found).max(axis=1) if len(found) else np.zeros(len(truth))).tolist()
    glyph = report["per_class"]["glyph"]
    return {
        "photos": report["samples"],
        "glyphs": len(best),
        "per_class": {k: glyph[k] for k in ("precision", "recall", "tp", "fp", "fn", "ap50", "ap50_95")},
        "best_iou": {
            "mean": float(np.mean(best)),
            "median": float(np.median(best)),
            "min": float(np.min(best)),
            "found_at_0.3": int(sum(v >= 0.3 for v in best)),
            "found_at_0.5": int(sum(v >= 0.5 for v in best)),
        },
    }


def markdown(r: Dict[str, Any]) -> str:
    m, b = r["per_class"], r["best_iou"]
    return "\n".join(
        [
            "## YOLOX boxes on glyphs drawn on real photos (`benchmarks/yolox_glyphs.py`)",
            "",
            "`pkg:ddddocr/common_det.onnx` (416x416, `yolox` decoder, top-left letterbox, pad 114, conf 0.1, NMS",
            f"0.45), ONNX Runtime FP32 on the CPU. {r['glyphs']} glyphs (four per photo, HERSHEY_SIMPLEX scale 2,",
            f"thickness 5, on a white patch) at fixed places on {r['photos']} of dlib's photos resized to 640x480 and",
            "blurred (sigma 2); truth = the drawn text extents. Counts from `edge-agent check`'s evaluation at IoU",
            "0.5; best IoU: each glyph's highest IoU with any detection.",
            "",
            "| precision | recall | tp / fp / fn | AP@0.5 | AP@[.5:.95] | best IoU per glyph: mean / median / min |"
            " glyphs with IoU >= 0.3 / >= 0.5 |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            f"| {m['precision']:.3f} | {m['recall']:.3f} | {m['tp']} / {m['fp']} / {m['fn']} | {m['ap50']:.4f} | "
            f"{m['ap50_95']:.4f} | {b['mean']:.3f} / {b['median']:.3f} / {b['min']:.3f} | "
            f"{b['found_at_0.3']} / {b['found_at_0.5']} of {r['glyphs']} |",
        ]
    )


def main(argv: Optional[List[str]] = None) -> int:
    return main_in_tempdir(argv, __doc__ or "", "yolox-glyphs", lambda folder, args: run(folder), markdown)


if __name__ == "__main__":
    sys.exit(main())
