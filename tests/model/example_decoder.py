"""An example user decoder (model.detection.decoder: tests.model.example_decoder:decode): reads a
YOLOv8-layout output itself and returns boxes in frame pixels, as docs/detection.md's contract says."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import numpy as np


def decode(outputs: Dict[str, np.ndarray], letterboxes: Sequence[Any], config: Any) -> List[Dict[str, np.ndarray]]:
    raw = next(iter(outputs.values()))
    images = []
    for i, box in enumerate(letterboxes):
        rows = raw[i].T  # [A, 4 + C]
        scores = rows[:, 4:].max(axis=1)
        keep = scores >= config.detection.conf_threshold
        cx, cy, w, h = rows[keep, :4].T
        corners = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        images.append(
            {
                "boxes": box.to_frame(corners),
                "scores": scores[keep],
                "classes": rows[keep, 4:].argmax(axis=1),
                "area": w * h,
            }
        )
    return images


def wrong_signature(outputs: Any) -> None:
    """Takes one argument: refused at load time."""
