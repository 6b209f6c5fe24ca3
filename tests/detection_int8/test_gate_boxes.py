"""The detector gate's pure logic: box agreement with the FP32 reference and per-class recall on
labeled boxes, judged by the gate's thresholds."""

from __future__ import annotations

from typing import List, Sequence

import numpy as np

from agent.accuracy.metrics import ImageBoxes
from agent.model.tasks.detection import Detections
from calibration.gate import Thresholds, box_agreement, detection_recall_deltas, detection_recalls, judge, score

LABELS = ["face", "hand"]


def dets(boxes: Sequence[Sequence[float]], scores: Sequence[float], classes: Sequence[int]) -> Detections:
    return Detections(
        np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        np.asarray(scores, dtype=np.float32),
        np.asarray(classes, dtype=np.int64),
        LABELS,
    )


def test_box_agreement_pairs_per_class_and_counts_the_unmatched() -> None:
    reference = [dets([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.8], [0, 1])]
    candidate = [dets([[0, 0, 10, 9], [50, 50, 60, 60], [20, 20, 30, 30]], [0.7, 0.6, 0.8], [0, 0, 0])]
    found = box_agreement(reference, candidate, LABELS, 0.5)
    face, hand = found["face"], found["hand"]
    assert (face["reference_boxes"], face["candidate_boxes"], face["matched"]) == (1, 3, 1)
    assert face["mean_iou"] == face["min_iou"] == 0.9
    assert abs(face["max_score_diff"] - 0.2) < 1e-6
    assert (face["unmatched_reference"], face["unmatched_candidate"]) == (0, 2)
    # the hand box found as a face is no match: boxes pair within one class only
    assert hand["matched"] == 0 and hand["unmatched_reference"] == 1 and hand["mean_iou"] is None


def test_classes_seen_on_neither_side_are_left_out() -> None:
    found = box_agreement([dets([[0, 0, 4, 4]], [0.9], [0])], [dets([[0, 0, 4, 4]], [0.9], [0])], LABELS, 0.5)
    assert list(found) == ["face"] and found["face"]["mean_iou"] == 1.0


def test_judge_names_each_failed_box_rule_and_passes_a_close_candidate() -> None:
    limits = Thresholds(min_box_iou=0.9, max_score_diff=0.1, max_unmatched_fraction=0.05)
    close = {
        "face": {
            "reference_boxes": 20,
            "candidate_boxes": 20,
            "matched": 20,
            "mean_iou": 0.95,
            "min_iou": 0.9,
            "max_score_diff": 0.05,
            "unmatched_reference": 0,
            "unmatched_candidate": 0,
        }
    }
    assert judge(None, None, limits, close) == []
    far = {"face": dict(close["face"], mean_iou=0.8, max_score_diff=0.3, matched=18, unmatched_reference=2)}
    reasons = judge(None, None, limits, far)
    assert len(reasons) == 3 and all("'face'" in r for r in reasons)
    assert any("unmatched" in r for r in reasons) and any("IoU 0.8000" in r for r in reasons)
    assert score(None, None, close) > score(None, None, far)


def image(truth: List[List[float]], found: List[List[float]], classes: List[int]) -> ImageBoxes:
    return ImageBoxes(truth, [0] * len(truth), found, [0.9] * len(found), classes)


def test_detection_recall_as_check_counts_it_and_the_one_point_rule() -> None:
    truth = [[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10]]
    reference = [image(truth, truth, [0, 0, 0, 0])]
    candidate = [image(truth, truth[:3] + [[60, 0, 64, 4]], [0, 0, 0, 0])]  # the last box misses (IoU 0.16)
    assert detection_recalls(reference, LABELS, 0.5) == {"face": 1.0}  # no labeled hands: left out
    deltas = detection_recall_deltas(reference, candidate, LABELS, 0.5)
    assert deltas == {"face": {"reference": 1.0, "candidate": 0.75, "delta_pp": -25.0}}
    reasons = judge(None, deltas, Thresholds(max_recall_drop_pp=1.0))
    assert reasons and "recall of class 'face' fell 25.00 pp" in reasons[0]
    assert judge(None, deltas, Thresholds(max_recall_drop_pp=30.0)) == []
