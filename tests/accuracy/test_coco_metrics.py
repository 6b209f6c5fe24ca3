"""COCO-style detection metrics against pycocotools (built in memory from the same labels and
detections) and per-class counts against an independent minimal matcher."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pytest

from agent.accuracy.labelsets import load_dlib
from agent.accuracy.metrics import (
    ImageBoxes,
    assign_coco,
    coco_ap,
    detection_confusion,
    detection_counts,
)
from tests.accuracy.coco_reference import coco_evaluate

FACES = Path(__file__).resolve().parents[1] / "fixtures/debian/libdlib19.1/usr/share/doc/libdlib19.1/examples/faces"


def pycocotools_ap(images: Sequence[ImageBoxes], classes: int) -> Tuple[List[Optional[np.ndarray]], float, float]:
    """Per class pycocotools' AP at each IoU threshold (None: precision -1), and stats AP, AP50."""
    annotations, detections = [], []
    for i, image in enumerate(images, start=1):
        for box, cls, crowd in zip(image.truth_boxes, image.truth_classes, image.truth_ignore):
            w, h = float(box[2] - box[0]), float(box[3] - box[1])
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i,
                    "category_id": int(cls) + 1,
                    "bbox": [float(box[0]), float(box[1]), w, h],
                    "area": w * h,
                    "iscrowd": int(crowd),
                }
            )
        for box, score, cls in zip(image.det_boxes, image.det_scores, image.det_classes):
            bbox = [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]
            detections.append({"image_id": i, "category_id": int(cls) + 1, "bbox": bbox, "score": float(score)})
    dataset = {
        "images": [{"id": i} for i in range(1, len(images) + 1)],
        "annotations": annotations,
        "categories": [{"id": c + 1, "name": f"c{c}"} for c in range(classes)],
    }
    evaluator = coco_evaluate(dataset, detections)
    precision = evaluator.eval["precision"][:, :, :, 0, 2]  # [T, R, K], area 'all', 100 detections
    per = [None if (precision[:, :, k] < 0).all() else precision[:, :, k].mean(axis=1) for k in range(classes)]
    return per, float(evaluator.stats[0]), float(evaluator.stats[1])


def random_case(seed: int, ignore_rate: float) -> Tuple[List[ImageBoxes], int]:
    """Boxes on a half-pixel grid (IoUs then come out bit-identical in both implementations),
    detections near the labeled boxes (some with the wrong class), strays, and tied scores."""
    rng = np.random.RandomState(seed)
    classes = int(rng.randint(1, 4))
    images = []
    for _ in range(int(rng.randint(1, 7))):
        count = int(rng.randint(0, 9))
        corner = rng.randint(0, 400, size=(count, 2)) / 2
        size = rng.randint(8, 160, size=(count, 2)) / 2
        truth = np.concatenate([corner, corner + size], axis=1)
        truth_classes = rng.randint(0, classes, size=count)
        keep = rng.rand(count) < 0.8
        near = truth[keep] + rng.randint(-8, 9, size=(int(keep.sum()), 4)) / 2
        near_classes = np.where(rng.rand(len(near)) < 0.85, truth_classes[keep], rng.randint(0, classes, len(near)))
        strays = int(rng.randint(0, 4))
        stray_corner = rng.randint(0, 400, size=(strays, 2)) / 2
        stray = np.concatenate([stray_corner, stray_corner + rng.randint(8, 100, size=(strays, 2)) / 2], axis=1)
        dets = np.concatenate([near, stray]).reshape(-1, 4)
        dets[:, 2:] = np.maximum(dets[:, 2:], dets[:, :2] + 1)
        scores = rng.rand(len(dets))
        scores[rng.rand(len(dets)) < 0.3] = 0.5  # ties
        images.append(
            ImageBoxes(
                truth,
                truth_classes,
                dets,
                scores,
                np.concatenate([near_classes, rng.randint(0, classes, strays)]).astype(np.int64),
                rng.rand(count) < ignore_rate,
            )
        )
    if not any(len(image.det_classes) for image in images):  # pycocotools' loadRes needs a detection
        images[0] = ImageBoxes(images[0].truth_boxes, images[0].truth_classes, [[0, 0, 5, 5]], [0.1], [0])
    return images, classes


def assert_equal_to_pycocotools(images: Sequence[ImageBoxes], classes: int) -> List[Optional[List[float]]]:
    ours = coco_ap(images, classes)
    theirs, ap, ap50 = pycocotools_ap(images, classes)
    for mine, reference in zip(ours, theirs):
        assert (mine is None) == (reference is None)
        if mine is not None:
            np.testing.assert_allclose(mine, reference, atol=1e-6, rtol=0)
    known = [row for row in ours if row is not None]
    if known:  # pycocotools' stats: the mean over the classes with labeled boxes
        assert float(np.mean([np.mean(row) for row in known])) == pytest.approx(ap, abs=1e-6)
        assert float(np.mean([row[0] for row in known])) == pytest.approx(ap50, abs=1e-6)
    return ours


@pytest.mark.parametrize("seed", range(12))
def test_ap_equals_pycocotools_on_random_cases(seed: int) -> None:
    images, classes = random_case(seed, ignore_rate=0.0 if seed % 2 else 0.2)
    ours = assert_equal_to_pycocotools(images, classes)
    assert any(row is not None for row in ours)


def test_ap_equals_pycocotools_beyond_100_detections_an_image() -> None:
    """pycocotools keeps each image's best 100 detections of a class: so must we."""
    rng = np.random.RandomState(7)
    truth = np.array([[10 * i, 0, 10 * i + 8, 8] for i in range(60)], dtype=float)
    dets = np.concatenate([truth, truth + 0.5, truth + 40])  # 180 detections of class 0
    image = ImageBoxes(truth, np.zeros(60, dtype=np.int64), dets, rng.rand(180), np.zeros(180, dtype=np.int64))
    ours = assert_equal_to_pycocotools([image], 1)
    assert ours[0] is not None and ours[0][0] < 1.0


def test_ap_equals_pycocotools_on_dlibs_faces() -> None:
    """The 25 labeled faces of dlib's testing.xml with a detector's kind of answers: shifted and
    resized boxes, two faces missed, false alarms on the background, one face marked ignored."""
    if not FACES.is_dir():
        pytest.skip("dlib's face photos are absent: run scripts/debian_fixtures.sh")
    labeled = load_dlib(str(FACES / "testing.xml"), ["face"])
    rng = np.random.RandomState(3)
    images = []
    for n, item in enumerate(labeled.items):
        truth = item.boxes
        size = truth[:, 2:] - truth[:, :2]
        shift = np.round(rng.uniform(-0.2, 0.2, size=(len(truth), 2)) * size * 2) / 2
        found = np.concatenate([truth[:, :2] + shift, truth[:, 2:] + shift * rng.uniform(0.5, 1.5)], axis=1)
        keep = np.ones(len(truth), dtype=bool)
        keep[: 1 if n < 2 else 0] = False
        alarms = np.array([[5, 5, 40, 40], [300, 20, 330, 52]], dtype=float)[: n % 3]
        dets = np.concatenate([found[keep], alarms])
        scores = np.concatenate([rng.uniform(0.5, 1.0, int(keep.sum())), rng.uniform(0.3, 0.7, len(alarms))])
        ignore = np.zeros(len(truth), dtype=bool)
        ignore[-1] = n == 4
        images.append(ImageBoxes(truth, item.classes, dets, scores, np.zeros(len(dets), dtype=np.int64), ignore))
    ours = assert_equal_to_pycocotools(images, 1)
    assert ours[0] is not None and 0.5 < ours[0][0] < 1.0 and np.mean(ours[0]) < ours[0][0]


def test_a_class_with_only_ignored_boxes_has_no_ap_like_pycocotools() -> None:
    image = ImageBoxes(
        [[0, 0, 10, 10], [20, 20, 40, 40]], [0, 1], [[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.8], [0, 1], [0, 1]
    )
    ours = assert_equal_to_pycocotools([image], 2)
    assert ours[0] == pytest.approx([1.0] * 10) and ours[1] is None


# --- per-class counts against an independent matcher ---


def plain_iou(a: Sequence[float], b: Sequence[float]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def minimal_counts(images: Sequence[ImageBoxes], classes: int, threshold: float) -> List[Dict[str, int]]:
    """Per class, detections best score first each take the free labeled box of their class they
    overlap most (a later box winning a tie), if that reaches the threshold."""
    counts = [{"tp": 0, "fp": 0, "fn": 0} for _ in range(classes)]
    for image in images:
        for c in range(classes):
            truths = [b for b, k in zip(image.truth_boxes.tolist(), image.truth_classes) if k == c]
            dets = sorted(
                ((s, b) for s, b, k in zip(image.det_scores, image.det_boxes.tolist(), image.det_classes) if k == c),
                key=lambda d: -d[0],
            )
            free = [True] * len(truths)
            for _, box in dets:
                best, chosen = threshold, -1
                for g, truth in enumerate(truths):
                    if free[g] and plain_iou(box, truth) >= best:
                        best, chosen = plain_iou(box, truth), g
                if chosen >= 0:
                    free[chosen] = False
                    counts[c]["tp"] += 1
                else:
                    counts[c]["fp"] += 1
            counts[c]["fn"] += sum(free)
    return counts


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("match_iou", [0.5, 0.75])
def test_counts_equal_an_independent_matcher(seed: int, match_iou: float) -> None:
    images, classes = random_case(100 + seed, ignore_rate=0.0)
    assignments = []
    for image in images:
        assigned, false_alarms = assign_coco(image, classes, match_iou)
        assignments.append((image.truth_classes, assigned, false_alarms))
    matrix = detection_confusion(assignments, classes)
    assert detection_counts(matrix) == minimal_counts(images, classes, match_iou)
    assert matrix[:-1].sum() == sum(len(i.truth_classes) for i in images)  # every labeled box once
    assert matrix[-1].sum() + matrix[:-1, :-1].sum() == sum(len(i.det_classes) for i in images)  # every detection


def test_a_detection_on_an_ignored_box_counts_neither_way() -> None:
    # a crowd box holds two detections (IoU with a crowd is the share of the detection inside it)
    image = ImageBoxes(
        [[0, 0, 10, 10], [50, 0, 100, 50]],
        [0, 0],
        [[0, 0, 10, 10], [55, 5, 70, 20], [80, 10, 95, 25], [200, 200, 210, 210]],
        [0.9, 0.8, 0.7, 0.6],
        [0, 0, 0, 0],
        [False, True],
    )
    assigned, false_alarms = assign_coco(image, 1, 0.5)
    assert assigned.tolist() == [0, -1] and false_alarms.tolist() == [0]  # only the stray box is a false alarm
    ap = coco_ap([image], 1)[0]
    assert ap is not None and ap[0] == pytest.approx(1.0)  # the ignored ones never rank as misses


@pytest.mark.parametrize(
    "truth, ignore, dets, expected",
    [
        # IoU exactly at the threshold matches
        ([[0, 0, 10, 20]], [0], [[0, 0, 10, 10]], 1 / 10),
        # IoU 0.5 with two boxes: the later one is taken, the second detection then misses; above 0.5 the
        # first detection misses and the second hits
        ([[0, 0, 10, 10], [10, 0, 20, 10]], [0, 0], [[0, 0, 20, 10], [10, 0, 20, 10]], (51 + 9 * 25.5) / 1010),
        # once on a regular box (IoU 0.64) a detection never moves to an ignored one it lies inside
        ([[0, 0, 10, 10], [0, 0, 9, 9]], [0, 1], [[0, 0, 8, 8]], 3 / 10),
    ],
)
def test_pycocotools_matching_rules(
    truth: List[List[float]], ignore: List[int], dets: List[List[float]], expected: float
) -> None:
    """Mean AP over the ten IoU thresholds."""
    image = ImageBoxes(
        truth, [0] * len(truth), dets, [0.9 - 0.1 * i for i in range(len(dets))], [0] * len(dets), ignore
    )
    ours = assert_equal_to_pycocotools([image], 1)[0]
    assert ours is not None and np.mean(ours) == pytest.approx(expected, abs=1e-6)
