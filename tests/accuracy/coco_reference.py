"""pycocotools as the reference for detection AP: a COCO evaluation run on in-memory datasets."""

from __future__ import annotations

import contextlib
import io
from typing import Any, Dict, List


def coco_evaluate(dataset: Dict[str, Any], detections: List[Dict[str, Any]]) -> Any:
    """COCOeval ("bbox") of ``detections`` against ``dataset`` (images, annotations, categories),
    evaluated, accumulated and summarized, pycocotools' printing silenced."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    truth = COCO()
    truth.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        truth.createIndex()
        evaluator = COCOeval(truth, truth.loadRes(detections), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator
