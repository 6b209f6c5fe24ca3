"""Acceptance: CenterFace FP32 through `edge-agent check` on dlib's labeled faces gives the
confusion counts of an independent minimal decode written here (3x3 heatmap peaks, greedy NMS,
greedy matching by score), and the AP pycocotools computes on that decode's boxes."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Dict, List, Tuple

import cv2
import numpy as np
import pytest
import yaml

from agent.util import packaged
from tests.accuracy.coco_reference import coco_evaluate
from tests.detection_int8.faces import CENTERFACE, FACES, centerface_config, have_faces

pytestmark = pytest.mark.skipif(
    not have_faces(), reason="dlib's face photos are absent: run scripts/debian_fixtures.sh"
)
REPO = Path(__file__).resolve().parents[2]


def labeled(xml: Path) -> Dict[str, np.ndarray]:
    """file -> [K, 4] x1, y1, x2, y2 from dlib's XML (left, top, width, height), read here with ElementTree."""
    out = {}
    for image in ET.parse(str(xml)).getroot().iter("image"):
        rows = [
            [
                float(b.get("left")),
                float(b.get("top")),
                float(b.get("left")) + float(b.get("width")),
                float(b.get("top")) + float(b.get("height")),
            ]
            for b in image.iter("box")
        ]
        out[image.get("file", "")] = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def minimal_decode(session: Any, image: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """CenterFace as CenterNet decodes it: RGB 0-255 at 640x480, cells that are their 3x3 maximum and
    >= 0.5, size exp(scale) * 4, centre (cell + offset + 0.5) * 4, greedy NMS at 0.3, back to the frame.
    Boxes and scores rounded as the agent's results are (2 and 6 decimals)."""
    h, w = image.shape[:2]
    blob = cv2.resize(image, (640, 480), interpolation=cv2.INTER_LINEAR)[:, :, ::-1].astype(np.float32)
    heat, scale, offset, _ = session.run(None, {session.get_inputs()[0].name: blob.transpose(2, 0, 1)[None]})
    grid = heat[0, 0]
    peak = grid == cv2.dilate(grid, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=-1.0)
    ys, xs = np.nonzero(peak & (grid >= 0.5))
    bh, bw = np.exp(scale[0, 0, ys, xs]) * 4, np.exp(scale[0, 1, ys, xs]) * 4
    cy, cx = (ys + offset[0, 0, ys, xs] + 0.5) * 4, (xs + offset[0, 1, ys, xs] + 0.5) * 4
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1).astype(np.float64)
    scores = grid[ys, xs].astype(np.float64)
    kept: List[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if all(iou(boxes[i], boxes[k]) <= 0.3 for k in kept):
            kept.append(int(i))
    boxes = boxes[kept] * np.array([w / 640, h / 480, w / 640, h / 480])
    boxes = np.clip(boxes, 0, [w, h, w, h])
    return np.round(boxes, 2), np.round(scores[kept], 6)


def centerface_session() -> Any:
    """The model at 1x3x480x640, reshaped here with onnx: its declared [10, 3, 32, 32] is a placeholder."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(packaged.resolve(CENTERFACE))
    for dim, value in zip(model.graph.input[0].type.tensor_type.shape.dim, (1, 3, 480, 640)):
        dim.dim_value = value
    del model.graph.value_info[:]
    for output in model.graph.output:
        for dim in output.type.tensor_type.shape.dim:
            dim.dim_param = "d"
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the model lists its initializers as inputs: one warning each
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def greedy_counts(truth: np.ndarray, boxes: np.ndarray, scores: np.ndarray) -> Tuple[int, int, int]:
    """tp, fp, fn: each detection, best score first, takes the free labeled box it overlaps most (>= 0.5)."""
    free = list(range(len(truth)))
    tp = 0
    for d in np.argsort(-scores, kind="stable"):
        best = max(free, key=lambda t: iou(boxes[d], truth[t]), default=None)
        if best is not None and iou(boxes[d], truth[best]) >= 0.5:
            free.remove(best)
            tp += 1
    return tp, len(boxes) - tp, len(free)


def pycocotools_ap(truth: Dict[str, np.ndarray], found: Dict[str, Tuple[np.ndarray, np.ndarray]]) -> List[float]:

    images, annotations, results = [], [], []
    for i, (name, boxes) in enumerate(sorted(truth.items()), start=1):
        images.append({"id": i, "file_name": name})
        for b in boxes:
            xywh = [b[0], b[1], b[2] - b[0], b[3] - b[1]]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i,
                    "category_id": 1,
                    "bbox": xywh,
                    "area": xywh[2] * xywh[3],
                    "iscrowd": 0,
                }
            )
        for b, s in zip(*found[name]):
            results.append(
                {"image_id": i, "category_id": 1, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": s}
            )
    dataset = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "face"}]}
    run = coco_evaluate(dataset, results)
    return [float(run.stats[1]), float(run.stats[0])]  # AP@0.5, AP@[.5:.95]


@pytest.mark.parametrize("xml", ["testing.xml", "training.xml"])
def test_check_matches_a_minimal_decode_and_pycocotools(tmp_path: Path, xml: str) -> None:
    config = tmp_path / "centerface.yaml"
    data = centerface_config(tmp_path, tmp_path, FACES / xml)
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "agent", "check", "-c", str(config), "--json"],
        capture_output=True,
        text=True,
        cwd=str(REPO),
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(done.stdout)

    session = centerface_session()
    truth = labeled(FACES / xml)
    found = {name: minimal_decode(session, cv2.imread(str(FACES / name))) for name in truth}
    tp, fp, fn = (sum(c) for c in zip(*(greedy_counts(truth[n], *found[n]) for n in truth)))
    assert report["confusion_matrix"] == [[tp, fn], [fp, 0]]
    assert report["matrix_labels"] == ["face", "background"]
    face = report["per_class"]["face"]
    assert (face["tp"], face["fp"], face["fn"]) == (tp, fp, fn) and tp + fn == sum(len(b) for b in truth.values())
    assert tp / (tp + fn) >= 0.8  # a real detector on real faces, not a vacuous equality
    ap50, ap50_95 = pycocotools_ap(truth, found)
    assert abs(face["ap50"] - ap50) < 1e-6 and abs(face["ap50_95"] - ap50_95) < 1e-6
    assert abs(report["macro"]["ap50"] - ap50) < 1e-6
