"""Detection outputs -> boxes in frame pixels: YOLOv5 [N, A, 5+C] and YOLOv8/11 [N, 4+C, A]
layouts, letterbox-aware mapping back to the frame, class-wise NMS, and IoU matching."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from agent.config.sections import DetectionConfig
from agent.util.errors import InputError

LAYOUTS = ("yolov5", "yolov8")


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every [x1, y1, x2, y2] box in ``a`` with every box in ``b``: shape [len(a), len(b)]."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """Centre x, centre y, width, height -> corners."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    half = boxes[:, 2:] / 2
    return np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression: indices of the kept boxes, best score first."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep: List[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        if order.size == 1:
            break
        overlap = box_iou(boxes[best : best + 1], boxes[order[1:]])[0]
        order = order[1:][overlap <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def classwise_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """NMS within each class (boxes of different classes never suppress each other), best first."""
    kept = [
        np.flatnonzero(classes == c)[nms(boxes[classes == c], scores[classes == c], iou_threshold)]
        for c in np.unique(classes)
    ]
    merged = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    return merged[np.argsort(-scores[merged], kind="stable")]


def match_boxes(
    truth_boxes: np.ndarray,
    truth_classes: np.ndarray,
    det_boxes: np.ndarray,
    det_classes: np.ndarray,
    iou_threshold: float,
    same_class: bool,
) -> List[Tuple[int, int]]:
    """One-to-one (truth, detection) pairs with IoU >= ``iou_threshold``, the highest IoU first.

    ``same_class=False`` matches regardless of class (the confusion matrix then shows which class a
    found object was given); ``same_class=True`` only pairs boxes of one class.
    """
    iou = box_iou(truth_boxes, det_boxes)
    if same_class and iou.size:
        iou = np.where(np.asarray(truth_classes)[:, None] == np.asarray(det_classes)[None, :], iou, 0.0)
    rows, cols = np.nonzero(iou >= iou_threshold)
    order = np.argsort(-iou[rows, cols], kind="stable")
    used_truth, used_det, pairs = set(), set(), []
    for r, c in zip(rows[order].tolist(), cols[order].tolist()):
        if r not in used_truth and c not in used_det:
            used_truth.add(r)
            used_det.add(c)
            pairs.append((r, c))
    return pairs


def assign_detections(
    truth_boxes: np.ndarray,
    truth_classes: np.ndarray,
    det_boxes: np.ndarray,
    det_classes: np.ndarray,
    iou_threshold: float = 0.5,
) -> Tuple[np.ndarray, np.ndarray]:
    """For the confusion matrix: (class given to each labeled box or -1 if missed, classes of the
    detections matching no labeled box). Same-class pairs are matched first, so an object found
    with the right class is credited even when a wrong-class box overlaps it more."""
    truth_classes = np.asarray(truth_classes, dtype=np.int64).reshape(-1)
    det_classes = np.asarray(det_classes, dtype=np.int64).reshape(-1)
    truth_boxes = np.asarray(truth_boxes, dtype=np.float64).reshape(-1, 4)
    det_boxes = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
    assigned = np.full(len(truth_classes), -1, dtype=np.int64)
    free_det = np.ones(len(det_classes), dtype=bool)
    for same_class in (True, False):
        free_truth = np.flatnonzero(assigned < 0)
        dets = np.flatnonzero(free_det)
        pairs = match_boxes(
            truth_boxes[free_truth],
            truth_classes[free_truth],
            det_boxes[dets],
            det_classes[dets],
            iou_threshold,
            same_class,
        )
        for t, d in pairs:
            assigned[free_truth[t]] = det_classes[dets[d]]
            free_det[dets[d]] = False
    return assigned, det_classes[free_det]


@dataclass
class Detections:
    """One image's detections in frame pixels, best score first."""

    boxes: np.ndarray  # [K, 4] x1, y1, x2, y2
    scores: np.ndarray  # [K]
    classes: np.ndarray  # [K] class index
    labels: Sequence[str]

    def as_dict(self) -> Dict[str, Any]:
        return {
            "detections": [
                {
                    "label": self.labels[int(c)],
                    "index": int(c),
                    "score": round(float(s), 6),
                    "box": [round(float(v), 2) for v in b],
                }
                for b, s, c in zip(self.boxes, self.scores, self.classes)
            ]
        }


class DetectionDecoder:
    """Raw YOLO outputs of a batch -> :class:`Detections` per frame."""

    def __init__(
        self,
        labels: Sequence[str],
        layout: str = "yolov8",
        output: str = "",
        conf_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        max_detections: int = 300,
        transpose_hw: bool = False,
    ) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"model.detection.format: expected one of {', '.join(LAYOUTS)}, got {layout!r}")
        self.labels = list(labels)
        self.layout = layout
        self.output = output
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold
        self.max_detections = max_detections
        self.transpose_hw = transpose_hw

    @classmethod
    def from_config(cls, det: DetectionConfig, model: Any) -> "DetectionDecoder":
        """From model.detection; class names from model.labels, else counted from the output shape."""
        shape = next(t.shape for t in model.info.outputs if t.name == model.output)
        classes = _class_count(det.format, shape)
        labels = list(model.labels) or ([f"class_{i}" for i in range(classes)] if classes else [])
        if not labels:
            raise InputError(
                f"model.labels: output {model.output!r} {list(shape)} has a dynamic class axis; name the classes"
            )
        if classes is not None and classes != len(labels):
            raise InputError(
                f"model.labels: {len(labels)} names, but {det.format} output {model.output!r} {list(shape)} has "
                f"{classes} classes"
            )
        return cls(
            labels,
            det.format,
            model.output,
            det.conf_threshold,
            det.iou_threshold,
            det.max_detections,
            model.spec.transpose_hw,
        )

    def candidates(self, output: np.ndarray) -> np.ndarray:
        """[N, A, 4 + C] rows: box (cx, cy, w, h in input pixels) and per-class scores."""
        values = np.asarray(output, dtype=np.float32)
        if values.ndim != 3:
            raise ValueError(f"{self.layout} output must have 3 dimensions, got shape {list(values.shape)}")
        if self.layout == "yolov8":
            rows = values.transpose(0, 2, 1)
        else:
            rows = np.concatenate([values[..., :4], values[..., 5:] * values[..., 4:5]], axis=2)
        if rows.shape[2] - 4 != len(self.labels):
            raise ValueError(
                f"{self.layout} output {list(np.shape(output))} has {rows.shape[2] - 4} classes, labels name "
                f"{len(self.labels)}"
            )
        return rows

    def decode_one(self, rows: np.ndarray, letterbox: Optional[Any]) -> Detections:
        """One image's candidate rows -> thresholded, NMS-ed detections in frame pixels."""
        class_scores = rows[:, 4:]
        classes = class_scores.argmax(axis=1)
        scores = class_scores[np.arange(len(rows)), classes]
        keep = scores >= self.conf_threshold
        boxes, scores, classes = xywh_to_xyxy(rows[keep, :4]), scores[keep], classes[keep]
        order = classwise_nms(boxes, scores, classes, self.iou_threshold)[: self.max_detections]
        boxes, scores, classes = boxes[order], scores[order], classes[order]
        if self.transpose_hw:  # the model saw the image transposed: its x is the frame's y
            boxes = boxes[:, [1, 0, 3, 2]]
        if letterbox is not None:
            boxes = letterbox.to_frame(boxes)
        return Detections(boxes.astype(np.float32), scores.astype(np.float32), classes.astype(np.int64), self.labels)

    def decode_boxes(self, outputs: Dict[str, np.ndarray], count: int, letterboxes: Sequence[Any]) -> List[Detections]:
        """Decode the first ``count`` images of a batch, mapping boxes through each one's letterbox."""
        output = outputs[self.output] if self.output else next(iter(outputs.values()))
        rows = self.candidates(output)
        return [self.decode_one(rows[i], letterboxes[i] if i < len(letterboxes) else None) for i in range(count)]


def _class_count(layout: str, shape: Sequence[Optional[int]]) -> Optional[int]:
    if len(shape) != 3:
        raise InputError(
            f"model.detection.format: {layout} expects a 3-dimensional output, the model's is {list(shape)}"
        )
    axis = shape[2] if layout == "yolov5" else shape[1]
    if axis is None:
        return None
    count = axis - (5 if layout == "yolov5" else 4)
    if count < 1:
        raise InputError(f"model.detection.format: output {list(shape)} does not have the {layout} layout")
    return count
