"""Detection outputs -> boxes in frame pixels: the layouts of agent.model.tasks.det_formats or a
user's decoder, the class map, class-wise NMS, the mapping back to the frame, and IoU matching."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from agent.config.sections import ModelConfig
from agent.model.tasks.class_map import build_class_map
from agent.model.tasks.custom_decoder import check_result, load_decoder
from agent.model.tasks.det_formats import FORMATS, MULTI_OUTPUT, NO_NMS, Candidates
from agent.util.errors import InputError


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
    """One image's detections in frame pixels, best score first; ``extra`` holds per-detection
    fields such as CenterFace's landmarks ([K, 10] x, y pairs in frame pixels)."""

    boxes: np.ndarray  # [K, 4] x1, y1, x2, y2
    scores: np.ndarray  # [K]
    classes: np.ndarray  # [K] class index
    labels: Sequence[str]
    extra: Dict[str, np.ndarray] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, Any]:
        detections = []
        for i, (b, s, c) in enumerate(zip(self.boxes, self.scores, self.classes)):
            item: Dict[str, Any] = {
                "label": self.labels[int(c)],
                "index": int(c),
                "score": round(float(s), 6),
                "box": [round(float(v), 2) for v in b],
            }
            for name, values in self.extra.items():
                item[name] = np.round(np.asarray(values[i], dtype=np.float64), 2).tolist()
            detections.append(item)
        return {"detections": detections}


def _swap_xy(coords: np.ndarray) -> np.ndarray:
    """(x, y) pairs -> (y, x) pairs: a model that saw the image transposed has its x on the frame's y."""
    pairs = np.asarray(coords).reshape(len(coords), -1, 2)
    return np.ascontiguousarray(pairs[..., ::-1]).reshape(len(coords), -1)


class DetectionDecoder:
    """Raw detector outputs of a batch -> :class:`Detections` per frame, classes after model.class_map.

    ``labels`` are the model's class names; ``self.labels`` the mapped ones that results carry.
    ``outputs`` names the model's outputs in order (multi-output layouts read them all); ``input_hw``
    is the input tensor's height and width (YOLOX's grid, CenterNet's stride).
    """

    def __init__(
        self,
        labels: Sequence[str],
        layout: str = "yolov8",
        output: str = "",
        conf_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        max_detections: int = 300,
        transpose_hw: bool = False,
        *,
        outputs: Sequence[str] = (),
        input_hw: Tuple[int, int] = (0, 0),
        class_map: Optional[Mapping[str, Optional[str]]] = None,
        custom: str = "",
        config: Optional[ModelConfig] = None,
    ) -> None:
        if not custom and layout not in FORMATS:
            raise ValueError(f"model.detection.format: expected one of {', '.join(FORMATS)}, got {layout!r}")
        self.model_labels = list(labels)
        self.map = build_class_map(self.model_labels, class_map or {})
        self.labels = self.map.labels
        self.layout = layout
        self.output = output
        self.outputs = list(outputs)
        self.input_hw = input_hw
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold
        self.max_detections = max_detections
        self.transpose_hw = transpose_hw
        self.custom_spec = custom
        self.custom = load_decoder(custom) if custom else None
        self.config = config

    @classmethod
    def from_config(cls, model_cfg: ModelConfig, model: Any) -> "DetectionDecoder":
        """From model.detection and model.class_map; class names from model.labels, else counted from
        the output shape."""
        det = model_cfg.detection
        outputs = [t.name for t in model.info.outputs]
        if det.decoder:
            classes: Optional[int] = None
        else:
            first = outputs[0] if det.format in MULTI_OUTPUT else model.output
            shape = next(t.shape for t in model.info.outputs if t.name == first)
            classes = _class_count(det.format, shape)
        labels = list(model.labels) or ([f"class_{i}" for i in range(classes)] if classes else [])
        if not labels:
            why = "a custom decoder (model.detection.decoder) is used" if det.decoder else "the class count is dynamic"
            raise InputError(f"model.labels: {why}; name the classes of output {model.output!r}")
        if classes is not None and classes != len(labels):
            raise InputError(
                f"model.labels: {len(labels)} names, but {det.format} output {model.output!r} {list(shape)} has "
                f"{classes} classes"
            )
        tensor = model.spec.tensor_shape()
        input_hw = (tensor[2], tensor[3]) if model.spec.layout == "NCHW" else (tensor[1], tensor[2])
        return cls(
            labels,
            det.format,
            model.output,
            det.conf_threshold,
            det.iou_threshold,
            det.max_detections,
            model.spec.transpose_hw,
            outputs=outputs,
            input_hw=input_hw,
            class_map=dict(model_cfg.class_map),
            custom=det.decoder or "",
            config=model_cfg,
        )

    def _finish(self, found: Candidates, letterbox: Optional[Any], nms_apply: bool, in_input: bool) -> Detections:
        """Class map, NMS (or best first), the cap, and the mapping from input to frame pixels."""
        if len(found.classes) and (found.classes.min() < 0 or found.classes.max() >= len(self.model_labels)):
            raise ValueError(
                f"decoded class {int(found.classes.max())} is outside the {len(self.model_labels)} model classes"
            )
        classes, keep = self.map.apply(found.classes)
        boxes, scores = found.boxes[keep], found.scores[keep]
        extra = {name: values[keep] for name, values in found.points.items()}
        if nms_apply:
            order = classwise_nms(boxes, scores, classes, self.iou_threshold)
        else:
            order = np.argsort(-scores, kind="stable")
        order = order[: self.max_detections]
        boxes, scores, classes = boxes[order], scores[order], classes[order]
        extra = {name: values[order] for name, values in extra.items()}
        if in_input:
            if self.transpose_hw:
                boxes = _swap_xy(boxes)
                extra = {name: _swap_xy(values) for name, values in extra.items()}
            if letterbox is not None:
                boxes = letterbox.to_frame(boxes)
                extra = {name: letterbox.to_frame(v, v.shape[1]) for name, v in extra.items()}
        return Detections(
            boxes.astype(np.float32), scores.astype(np.float32), classes.astype(np.int64), self.labels, extra
        )

    def decode_boxes(self, outputs: Dict[str, np.ndarray], count: int, letterboxes: Sequence[Any]) -> List[Detections]:
        """Decode the first ``count`` images of a batch, mapping boxes through each one's letterbox."""
        boxes = [letterboxes[i] if i < len(letterboxes) else None for i in range(count)]
        if self.custom is not None:
            images = check_result(self.custom_spec, self.custom(outputs, boxes, self.config), count)
            return [self._finish(_from_custom(image), None, False, False) for image in images]
        if self.layout in MULTI_OUTPUT:
            arrays = [outputs[name] for name in self.outputs if name in outputs]
        else:
            arrays = [outputs[self.output] if self.output else next(iter(outputs.values()))]
        found = FORMATS[self.layout](arrays, self.input_hw, len(self.model_labels), self.conf_threshold)
        return [self._finish(found[i], boxes[i], self.layout not in NO_NMS, True) for i in range(count)]


def _from_custom(image: Dict[str, np.ndarray]) -> Candidates:
    extra = {k: v for k, v in image.items() if k not in ("boxes", "scores", "classes")}
    return Candidates(
        image["boxes"], image["scores"].astype(np.float32).reshape(-1), image["classes"].astype(np.int64), extra
    )


def _class_count(layout: str, shape: Sequence[Optional[int]]) -> Optional[int]:
    """Classes the output shape declares (None where its axis is dynamic or the layout has none)."""
    if layout == "end2end":
        return None
    if layout == "centernet":
        if len(shape) != 4:
            raise InputError(f"model.detection.format: centernet expects a 4-dimensional heatmap, got {list(shape)}")
        return shape[1]
    if len(shape) != 3:
        raise InputError(
            f"model.detection.format: {layout} expects a 3-dimensional output, the model's is {list(shape)}"
        )
    axis = shape[1] if layout == "yolov8" else shape[2]
    if axis is None:
        return None
    count = axis - (4 if layout == "yolov8" else 5)
    if count < 1:
        raise InputError(f"model.detection.format: output {list(shape)} does not have the {layout} layout")
    return count
