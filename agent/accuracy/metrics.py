"""Metrics from predictions: confusion matrices (detection with a background row and column),
per-class precision / recall / F1, Wilson score intervals, macro averages, and COCO-style
detection matching and AP (AP@0.5, AP@[.5:.95]).

Pure numpy. Classification metrics equal scikit-learn's and statsmodels' definitions; detection
matching and AP follow pycocotools' ``COCOeval`` (pycocotools/cocoeval.py 2.0.x: ``evaluateImg`` for
the matching, ``accumulate`` for the interpolation, ``Params.setDetParams`` for the thresholds)
with the bbox IoU of its ``maskApi.c`` (``bbIou``), area range 'all' and at most 100 detections per
image and class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from agent.model.tasks.detection import box_iou, match_boxes

Z95 = 1.959963984540054  # two-sided 95% normal quantile
# cocoeval.py Params.setDetParams: IoU thresholds .50:.05:.95, 101 recall points, maxDets 100
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_POINTS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETECTIONS = 100
NO_SUPPORT = "no labeled samples of this class: recall and F1 are null (not measured), not 0"


def confusion_matrix(truth: Sequence[int], predicted: Sequence[int], classes: int) -> np.ndarray:
    """Rows are the true class, columns the predicted class."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(truth, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def wilson_interval(successes: int, trials: int, z: float = Z95) -> Tuple[Optional[float], Optional[float]]:
    """Wilson score interval for a proportion; (None, None) without trials."""
    if trials <= 0:
        return None, None
    p = successes / trials
    denom = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def per_class(matrix: np.ndarray, labels: Sequence[str]) -> Dict[str, Dict[str, object]]:
    """Precision, recall, F1, support and the recall's Wilson 95% interval for each class.

    A class without support has no recall: recall and F1 are None (not scikit-learn's
    zero_division=0, which would read as a collapse), the interval is [None, None] and ``note``
    says why. A class never predicted keeps precision 0, as zero_division=0 gives."""
    out: Dict[str, Dict[str, object]] = {}
    for i, name in enumerate(labels):
        tp = int(matrix[i, i])
        support = int(matrix[i, :].sum())
        precision = _ratio(tp, int(matrix[:, i].sum()))
        recall = tp / support if support else None
        f1 = None if recall is None else _ratio(2 * precision * recall, precision + recall)
        lo, hi = wilson_interval(tp, support)
        out[name] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support,
            "recall_ci95": [lo, hi],
        }
        if not support:
            out[name]["note"] = NO_SUPPORT
    return out


def accuracy(matrix: np.ndarray) -> float:
    return _ratio(float(np.trace(matrix)), float(matrix.sum()))


def macro(per: Dict[str, Dict[str, Any]], names: List[str]) -> Dict[str, Optional[float]]:
    """Unweighted means over the named classes that have support (a class without samples has
    no recall, so it takes no part in any of the three); None where no class has support."""
    supported = [n for n in names if per[n]["support"]]
    return {
        k: float(np.mean([float(per[n][k]) for n in supported])) if supported else None
        for k in ("precision", "recall", "f1")
    }


def detection_confusion(assignments: Iterable[Tuple[np.ndarray, np.ndarray, np.ndarray]], classes: int) -> np.ndarray:
    """(C+1) x (C+1) matrix, background last, from per-image ``(truth_classes, assigned, false_alarms)``.

    ``assigned[i]`` is the class of the detection matched to truth ``i``, or -1 for a miss (counted
    in the background column); ``false_alarms`` holds the classes of unmatched detections (counted
    in the background row). The background-background cell stays 0.
    """
    background = classes
    matrix = np.zeros((classes + 1, classes + 1), dtype=np.int64)
    for truth, assigned, false_alarms in assignments:
        predicted = np.where(np.asarray(assigned) < 0, background, assigned)
        np.add.at(matrix, (np.asarray(truth, dtype=np.int64), predicted.astype(np.int64)), 1)
        np.add.at(matrix, (np.full(len(false_alarms), background), np.asarray(false_alarms, dtype=np.int64)), 1)
    return matrix


@dataclass
class ImageBoxes:
    """One image's labeled boxes and detections, corners in pixels."""

    truth_boxes: np.ndarray  # [M, 4]
    truth_classes: np.ndarray  # [M]
    det_boxes: np.ndarray  # [K, 4]
    det_scores: np.ndarray  # [K]
    det_classes: np.ndarray  # [K]
    truth_ignore: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # [M] crowd regions

    def __post_init__(self) -> None:
        self.truth_boxes = np.asarray(self.truth_boxes, dtype=np.float64).reshape(-1, 4)
        self.truth_classes = np.asarray(self.truth_classes, dtype=np.int64).reshape(-1)
        self.det_boxes = np.asarray(self.det_boxes, dtype=np.float64).reshape(-1, 4)
        self.det_scores = np.asarray(self.det_scores, dtype=np.float64).reshape(-1)
        self.det_classes = np.asarray(self.det_classes, dtype=np.int64).reshape(-1)
        ignore = np.asarray(self.truth_ignore, dtype=bool).reshape(-1)
        self.truth_ignore = (
            ignore if len(ignore) == len(self.truth_classes) else np.zeros(len(self.truth_classes), bool)
        )


def overlaps(det_boxes: np.ndarray, truth_boxes: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """[D, G] IoU; against a crowd (ignored) box the intersection over the detection's own area,
    as maskApi.c ``bbIou`` does for ``iscrowd``: the intersection lies inside the detection, so its
    IoU with the detection is that ratio."""
    iou = box_iou(det_boxes, truth_boxes)
    for g in np.flatnonzero(crowd):
        inner = np.concatenate(
            [np.maximum(det_boxes[:, :2], truth_boxes[g, :2]), np.minimum(det_boxes[:, 2:], truth_boxes[g, 2:])], axis=1
        )
        inner[:, 2:] = np.maximum(inner[:, 2:], inner[:, :2])  # no overlap: an empty box
        iou[:, g] = [box_iou(d, i)[0, 0] for d, i in zip(det_boxes, inner)]
    return iou


def coco_match(iou: np.ndarray, ignore: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """[T, D] index of the labeled box each detection matches at each threshold, -1 for none.

    Detections must come best score first and labeled boxes ignored last (``iou`` is [D, G] in
    those orders). cocoeval.py ``evaluateImg``: each detection takes the box it overlaps most among
    those not yet taken (an ignored box can be taken again), at least the threshold (capped at
    1 - 1e-10), a later box winning a tie; once it holds a regular box it never moves to an
    ignored one.
    """
    matches = np.full((len(thresholds), iou.shape[0]), -1, dtype=np.int64)
    for t, threshold in enumerate(thresholds):
        taken = np.zeros(iou.shape[1], dtype=bool)
        for d in range(iou.shape[0]):
            best, m = min(threshold, 1 - 1e-10), -1
            for g in range(iou.shape[1]):
                if taken[g] and not ignore[g]:
                    continue
                if m > -1 and not ignore[m] and ignore[g]:
                    break
                if iou[d, g] < best:
                    continue
                best, m = iou[d, g], g
            if m > -1:
                matches[t, d], taken[m] = m, True
    return matches


@dataclass
class ClassMatch:
    """One image's detections of one class matched to its labeled boxes of that class."""

    dets: np.ndarray  # indices into the image's detections, best score first
    truths: np.ndarray  # indices into the image's labeled boxes, ignored last
    matches: np.ndarray  # [T, len(dets)] position in ``truths`` or -1


def match_class(
    image: ImageBoxes, c: int, thresholds: Sequence[float], max_dets: Optional[int] = MAX_DETECTIONS
) -> ClassMatch:
    """Class ``c`` of one image matched at each threshold; the best ``max_dets`` detections (None: all)."""
    truths = np.flatnonzero(image.truth_classes == c)
    truths = truths[np.argsort(image.truth_ignore[truths], kind="mergesort")]
    dets = np.flatnonzero(image.det_classes == c)
    dets = dets[np.argsort(-image.det_scores[dets], kind="mergesort")][:max_dets]
    ignore = image.truth_ignore[truths]
    iou = overlaps(image.det_boxes[dets], image.truth_boxes[truths], ignore)
    return ClassMatch(dets, truths, coco_match(iou, ignore, thresholds))


def interpolated_ap(scores: np.ndarray, hit: np.ndarray, ignored: np.ndarray, positives: int) -> float:
    """101-point interpolated AP of one class at one threshold (cocoeval.py ``accumulate``): the
    precision envelope read at each recall point, 0 beyond the highest recall reached."""
    if not len(scores):
        return 0.0
    order = np.argsort(-scores, kind="mergesort")
    hit, ignored = hit[order], ignored[order]
    tp = np.cumsum(hit & ~ignored).astype(np.float64)
    fp = np.cumsum(~hit & ~ignored).astype(np.float64)
    recall = tp / positives
    precision = np.maximum.accumulate((tp / (fp + tp + np.spacing(1)))[::-1])[::-1]
    at = np.searchsorted(recall, RECALL_POINTS, side="left")
    return float(np.mean(np.where(at < len(precision), precision[np.minimum(at, len(precision) - 1)], 0.0)))


def coco_ap(
    images: Sequence[ImageBoxes], classes: int, thresholds: Sequence[float] = tuple(IOU_THRESHOLDS)
) -> List[Optional[List[float]]]:
    """Per class the AP at each threshold, None for a class without regular labeled boxes
    (pycocotools' precision -1). AP@0.5 is the first of the default thresholds, AP@[.5:.95] their mean."""
    out: List[Optional[List[float]]] = []
    for c in range(classes):
        scores, hits, ignored, positives = [], [], [], 0
        for image in images:
            found = match_class(image, c, thresholds)
            ignore = image.truth_ignore[found.truths]
            hit = found.matches >= 0
            positives += int(np.count_nonzero(~ignore))
            scores.append(image.det_scores[found.dets])
            hits.append(hit)
            ignored.append(ignore[np.maximum(found.matches, 0)] & hit if len(ignore) else hit)
        if not positives:
            out.append(None)
            continue
        all_scores, all_hits, all_ignored = (np.concatenate(v, axis=-1) for v in (scores, hits, ignored))
        out.append(
            [interpolated_ap(all_scores, all_hits[t], all_ignored[t], positives) for t in range(len(thresholds))]
        )
    return out


def assign_coco(image: ImageBoxes, classes: int, match_iou: float) -> Tuple[np.ndarray, np.ndarray]:
    """For the confusion matrix: (class given to each labeled box, -1 if missed; classes of the
    detections matching no labeled box). Same-class pairs come from :func:`match_class` at
    ``match_iou`` over all detections, so the diagonal is the COCO-style true positives; a detection
    on an ignored box is dropped; what is left is paired across classes by highest IoU."""
    assigned = np.full(len(image.truth_classes), -1, dtype=np.int64)
    free = np.ones(len(image.det_classes), dtype=bool)
    for c in range(classes):
        found = match_class(image, c, [match_iou], max_dets=None)
        for d, m in zip(found.dets, found.matches[0]):
            if m >= 0:
                free[d] = False
                if not image.truth_ignore[found.truths[m]]:
                    assigned[found.truths[m]] = c
    open_truth = np.flatnonzero((assigned < 0) & ~image.truth_ignore)
    dets = np.flatnonzero(free)
    for t, d in match_boxes(
        image.truth_boxes[open_truth],
        image.truth_classes[open_truth],
        image.det_boxes[dets],
        image.det_classes[dets],
        match_iou,
        same_class=False,
    ):
        assigned[open_truth[t]] = image.det_classes[dets[d]]
        free[dets[d]] = False
    return assigned, image.det_classes[free]


def detection_counts(matrix: np.ndarray) -> List[Dict[str, int]]:
    """Per class tp, fp, fn from a detection confusion matrix (background last)."""
    diagonal = np.diag(matrix)[:-1]
    return [
        {"tp": int(tp), "fp": int(column - tp), "fn": int(row - tp)}
        for tp, row, column in zip(diagonal, matrix[:-1].sum(axis=1), matrix[:, :-1].sum(axis=0))
    ]
