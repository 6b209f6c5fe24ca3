"""Raw detector outputs -> per-image candidates (boxes in input pixels, scores, model classes),
one function per output layout. Thresholding happens here; NMS, the class map and the mapping
back to the frame are the decoder's (agent.model.tasks.detection)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

YOLOX_STRIDES = (8, 16, 32)


@dataclass
class Candidates:
    """One image's candidate detections, in the model's input pixels."""

    boxes: np.ndarray  # [K, 4] x1, y1, x2, y2
    scores: np.ndarray  # [K]
    classes: np.ndarray  # [K] model class index
    points: Dict[str, np.ndarray] = field(default_factory=dict)  # extra fields; built-in: [K, 2m] (x, y) pairs


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """Centre x, centre y, width, height -> corners."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    half = boxes[:, 2:4] / 2
    return np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1)


def _check_classes(layout: str, shape: Sequence[int], found: int, classes: int) -> None:
    if found != classes:
        raise ValueError(f"{layout} output {list(shape)} has {found} classes, labels name {classes}")


def _one_output(layout: str, outputs: Sequence[np.ndarray]) -> np.ndarray:
    values = np.asarray(outputs[0], dtype=np.float32)
    if values.ndim != 3:
        raise ValueError(f"{layout} output must have 3 dimensions, got shape {list(values.shape)}")
    return values


def _score_rows(rows: np.ndarray, conf: float) -> List[Candidates]:
    """[N, A, 4 + C] rows (cx, cy, w, h, per-class scores) -> candidates above ``conf``."""
    found = []
    for image in rows:
        classes = image[:, 4:].argmax(axis=1)
        scores = image[np.arange(len(image)), 4 + classes]
        keep = scores >= conf
        found.append(Candidates(xywh_to_xyxy(image[keep, :4]), scores[keep], classes[keep]))
    return found


def yolov8(outputs: Sequence[np.ndarray], input_hw: Tuple[int, int], classes: int, conf: float) -> List[Candidates]:
    """[N, 4 + C, A]: cx, cy, w, h in input pixels, then class scores."""
    values = _one_output("yolov8", outputs)
    _check_classes("yolov8", values.shape, values.shape[1] - 4, classes)
    return _score_rows(values.transpose(0, 2, 1), conf)


def _objectness_rows(layout: str, values: np.ndarray, classes: int) -> np.ndarray:
    _check_classes(layout, values.shape, values.shape[2] - 5, classes)
    return np.concatenate([values[..., :4], values[..., 5:] * values[..., 4:5]], axis=2)


def yolov5(outputs: Sequence[np.ndarray], input_hw: Tuple[int, int], classes: int, conf: float) -> List[Candidates]:
    """[N, A, 5 + C]: cx, cy, w, h in input pixels, objectness, class scores (score = obj * class)."""
    return _score_rows(_objectness_rows("yolov5", _one_output("yolov5", outputs), classes), conf)


def yolox_grid(input_hw: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """Cell (x, y) [A, 2] and stride [A, 1] of every anchor, strides 8/16/32 in that order, as YOLOX's
    ``demo_postprocess`` lays them out (Megvii-BaseDetection/YOLOX yolox/utils/demo_utils.py; ddddocr
    1.6.1 core/detection_engine.py decodes common_det.onnx the same way)."""
    grids, strides = [], []
    for stride in YOLOX_STRIDES:
        xv, yv = np.meshgrid(np.arange(input_hw[1] // stride), np.arange(input_hw[0] // stride))
        grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
        strides.append(np.full((grids[-1].shape[0], 1), stride))
    return np.concatenate(grids).astype(np.float32), np.concatenate(strides).astype(np.float32)


def yolox(outputs: Sequence[np.ndarray], input_hw: Tuple[int, int], classes: int, conf: float) -> List[Candidates]:
    """[N, A, 5 + C] raw head outputs: xy = (p + cell) * stride, wh = exp(p) * stride, score = obj * class."""
    values = _one_output("yolox", outputs).copy()
    grid, stride = yolox_grid(input_hw)
    if values.shape[1] != len(grid):
        raise ValueError(
            f"yolox output {list(values.shape)} has {values.shape[1]} anchors; a {input_hw[1]}x{input_hw[0]} input "
            f"has {len(grid)} at strides {list(YOLOX_STRIDES)}"
        )
    values[..., :2] = (values[..., :2] + grid) * stride
    values[..., 2:4] = np.exp(values[..., 2:4]) * stride
    return yolov5([values], input_hw, classes, conf)


def end2end(outputs: Sequence[np.ndarray], input_hw: Tuple[int, int], classes: int, conf: float) -> List[Candidates]:
    """[N, K, 6]: x1, y1, x2, y2 in input pixels, score, class (NMS done in the model)."""
    values = _one_output("end2end", outputs)
    if values.shape[2] != 6:
        raise ValueError(f"end2end output must be [N, K, 6], got shape {list(values.shape)}")
    found = []
    for image in values:
        image = image[image[:, 4] >= conf]
        cls = np.rint(image[:, 5]).astype(np.int64)
        if len(cls) and (cls.min() < 0 or cls.max() >= classes):
            raise ValueError(f"end2end output has class {int(cls.max())} but labels name {classes} classes")
        found.append(Candidates(image[:, :4].copy(), image[:, 4].copy(), cls))
    return found


def heatmap_peaks(heat: np.ndarray) -> np.ndarray:
    """Mask of the cells equal to the maximum of their 3x3 neighbourhood (CenterNet's max-pool NMS)."""
    padded = np.pad(heat, [(0, 0)] * (heat.ndim - 2) + [(1, 1), (1, 1)], constant_values=-np.inf)
    height, width = heat.shape[-2:]
    pooled = np.max(
        [padded[..., dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3)],
        axis=0,
    )
    return heat == pooled


def centernet(outputs: Sequence[np.ndarray], input_hw: Tuple[int, int], classes: int, conf: float) -> List[Candidates]:
    """heatmap [N, C, h, w], scale [N, 2, h, w] (log height, log width), offset [N, 2, h, w] (y, x) and
    optional landmarks [N, 2m, h, w] ((y, x) per point, relative to the box corner in box sizes), as
    deface 1.5.0's ``CenterFace.decode`` (deface/centerface.py) reads them: size = exp(scale) * stride,
    centre = (cell + offset + 0.5) * stride. Peaks are 3x3 local maxima of the heatmap."""
    if len(outputs) < 3:
        raise ValueError(f"centernet needs heatmap, scale and offset outputs, the model has {len(outputs)}")
    heat, scale, offset = (np.asarray(o, dtype=np.float32) for o in outputs[:3])
    marks = np.asarray(outputs[3], dtype=np.float32) if len(outputs) > 3 else None
    if heat.ndim != 4 or scale.shape[1:2] != (2,) or offset.shape[1:2] != (2,):
        raise ValueError(
            f"centernet outputs must be heatmap [N, C, h, w], scale and offset [N, 2, h, w]; got "
            f"{list(heat.shape)}, {list(scale.shape)}, {list(offset.shape)}"
        )
    _check_classes("centernet", heat.shape, heat.shape[1], classes)
    stride = input_hw[0] / heat.shape[2]
    peaks = heatmap_peaks(heat) & (heat >= conf)
    found = []
    for n in range(heat.shape[0]):
        cls, ys, xs = np.nonzero(peaks[n])
        h = np.exp(scale[n, 0, ys, xs]) * stride
        w = np.exp(scale[n, 1, ys, xs]) * stride
        cy = (ys + offset[n, 0, ys, xs] + 0.5) * stride
        cx = (xs + offset[n, 1, ys, xs] + 0.5) * stride
        x1, y1 = cx - w / 2, cy - h / 2
        boxes = np.stack([x1, y1, x1 + w, y1 + h], axis=1).astype(np.float32)
        points = {}
        if marks is not None:
            rel = marks[n][:, ys, xs].T  # [K, 2m] as (y, x) pairs
            points["landmarks"] = np.stack(
                [rel[:, 1::2] * w[:, None] + x1[:, None], rel[:, 0::2] * h[:, None] + y1[:, None]], axis=2
            ).reshape(len(ys), rel.shape[1])  # [K, 2m] x, y pairs (also when K is 0)
        found.append(Candidates(boxes, heat[n, cls, ys, xs], cls.astype(np.int64), points))
    return found


Decode = Callable[[Sequence[np.ndarray], Tuple[int, int], int, float], List[Candidates]]
FORMATS: Dict[str, Decode] = {
    "yolov5": yolov5,
    "yolov8": yolov8,
    "yolox": yolox,
    "centernet": centernet,
    "end2end": end2end,
}
NO_NMS = ("end2end",)
MULTI_OUTPUT = ("centernet",)
