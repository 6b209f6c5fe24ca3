"""Detection decoding on synthetic tensors with known boxes: both YOLO layouts, letterbox
mapping through the real preprocessing, class-wise NMS and IoU matching."""

from __future__ import annotations

import numpy as np
import pytest

from agent.model.info import InputSpec
from agent.model.preprocess import Letterbox, preprocess
from agent.model.tasks.detection import (
    DetectionDecoder,
    assign_detections,
    box_iou,
    classwise_nms,
    match_boxes,
    nms,
)

LABELS = ["person", "car", "dog"]


def yolov8_output(rows: list, anchors: int = 12) -> np.ndarray:
    """rows: (cx, cy, w, h, class, score) in input pixels -> [1, 4 + C, anchors]."""
    out = np.zeros((1, 4 + len(LABELS), anchors), dtype=np.float32)
    for a, (cx, cy, w, h, cls, score) in enumerate(rows):
        out[0, :4, a] = [cx, cy, w, h]
        out[0, 4 + cls, a] = score
    return out


def yolov5_output(rows: list, anchors: int = 12) -> np.ndarray:
    """rows: (cx, cy, w, h, objectness, class, class score) -> [1, anchors, 5 + C]."""
    out = np.zeros((1, anchors, 5 + len(LABELS)), dtype=np.float32)
    for a, (cx, cy, w, h, obj, cls, score) in enumerate(rows):
        out[0, a, :5] = [cx, cy, w, h, obj]
        out[0, a, 5 + cls] = score
    return out


def test_iou_by_hand() -> None:
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]]))
    np.testing.assert_allclose(iou, [[50 / 150, 0.0, 1.0]])


def test_nms_keeps_the_best_of_overlapping_boxes_per_class() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10], [30, 30, 40, 40]], dtype=np.float32)
    scores = np.array([0.8, 0.9, 0.7, 0.6], dtype=np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [1, 3]
    # box 2 is another class: NMS within classes keeps it although it overlaps box 1
    assert classwise_nms(boxes, scores, np.array([0, 0, 1, 0]), 0.5).tolist() == [1, 2, 3]


def test_yolov8_layout_decodes_thresholds_and_suppresses() -> None:
    decoder = DetectionDecoder(LABELS, "yolov8", "out", conf_threshold=0.3, iou_threshold=0.5)
    out = yolov8_output(
        [(50, 50, 20, 40, 0, 0.9), (51, 50, 20, 40, 0, 0.8), (100, 100, 30, 30, 1, 0.7), (10, 10, 4, 4, 2, 0.2)]
    )
    [det] = decoder.decode_boxes({"out": out}, 1, [None])
    assert det.classes.tolist() == [0, 1]
    np.testing.assert_allclose(det.boxes, [[40, 30, 60, 70], [85, 85, 115, 115]])
    np.testing.assert_allclose(det.scores, [0.9, 0.7], rtol=1e-6)
    assert det.as_dict()["detections"][1] == {
        "label": "car",
        "index": 1,
        "score": 0.7,
        "box": [85.0, 85.0, 115.0, 115.0],
    }


def test_yolov5_layout_multiplies_objectness_and_class_score() -> None:
    decoder = DetectionDecoder(LABELS, "yolov5", "out", conf_threshold=0.3, iou_threshold=0.5)
    out = yolov5_output([(50, 50, 20, 40, 0.5, 2, 0.9), (80, 20, 10, 10, 0.9, 1, 0.3)])
    [det] = decoder.decode_boxes({"out": out}, 1, [None])
    assert det.classes.tolist() == [2]  # 0.45 passes; 0.27 does not
    np.testing.assert_allclose(det.scores, [0.45], rtol=1e-6)


def test_both_layouts_give_the_same_boxes() -> None:
    rows8 = [(50, 60, 20, 10, 1, 0.8), (200, 100, 40, 40, 2, 0.6)]
    rows5 = [(cx, cy, w, h, 1.0, c, s) for cx, cy, w, h, c, s in rows8]
    a = DetectionDecoder(LABELS, "yolov8", "o").decode_boxes({"o": yolov8_output(rows8)}, 1, [None])[0]
    b = DetectionDecoder(LABELS, "yolov5", "o").decode_boxes({"o": yolov5_output(rows5)}, 1, [None])[0]
    np.testing.assert_allclose(a.boxes, b.boxes)
    assert a.classes.tolist() == b.classes.tolist()


def test_letterbox_mapping_through_real_preprocessing() -> None:
    """A 200x100 frame letterboxed into 64x64: scale 0.32, 16 px of padding above and below."""
    spec = InputSpec("images", 64, 64, 3, "NCHW", 1, "RGB", "letterbox", 1 / 255, (0.0,) * 3, (1.0,) * 3, False)
    frame = np.zeros((100, 200, 3), dtype=np.uint8)
    _, box = preprocess(frame, spec)
    assert (box.scale_x, box.pad_x, box.pad_y) == (pytest.approx(0.32), 0.0, 16.0)
    # a box at frame pixels (50, 25)-(150, 75) sits at input (16, 24)-(48, 40)
    decoder = DetectionDecoder(LABELS, "yolov8", "o")
    [det] = decoder.decode_boxes({"o": yolov8_output([(32, 32, 32, 16, 0, 0.9)])}, 1, [box])
    np.testing.assert_allclose(det.boxes, [[50, 25, 150, 75]], atol=1e-4)


def test_mapped_boxes_are_clipped_to_the_frame_and_transposed_models_are_swapped_back() -> None:
    box = Letterbox(0.5, 0.5, 0.0, 10.0, 100, 60)
    decoder = DetectionDecoder(LABELS, "yolov8", "o")
    [det] = decoder.decode_boxes({"o": yolov8_output([(45, 20, 20, 20, 0, 0.9)])}, 1, [box])
    np.testing.assert_allclose(det.boxes, [[70, 0, 100, 40]])
    transposed = DetectionDecoder(LABELS, "yolov8", "o", transpose_hw=True)
    [det] = transposed.decode_boxes({"o": yolov8_output([(20, 10, 10, 4, 0, 0.9)])}, 1, [None])
    np.testing.assert_allclose(det.boxes, [[8, 15, 12, 25]])  # x and y swapped back


def test_batches_decode_per_image_with_their_own_letterbox() -> None:
    out = np.concatenate([yolov8_output([(10, 10, 4, 4, 0, 0.9)]), yolov8_output([(20, 20, 4, 4, 1, 0.9)])])
    boxes = [Letterbox(1.0, 1.0, 0, 0, 100, 100), Letterbox(2.0, 2.0, 0, 0, 100, 100)]
    first, second = DetectionDecoder(LABELS, "yolov8", "o").decode_boxes({"o": out}, 2, boxes)
    np.testing.assert_allclose(first.boxes, [[8, 8, 12, 12]])
    np.testing.assert_allclose(second.boxes, [[9, 9, 11, 11]])


def test_wrong_class_count_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="has 4 classes, labels name 3"):
        DetectionDecoder(LABELS, "yolov8", "o").decode_boxes({"o": np.zeros((1, 8, 5), dtype=np.float32)}, 1, [None])


def test_matching_prefers_the_right_class_then_the_highest_iou() -> None:
    truth = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], dtype=float)
    dets = np.array([[0, 0, 10, 10], [0, 0, 10, 9], [21, 21, 30, 30], [80, 80, 90, 90]], dtype=float)
    # truth 0 (person): a 'car' at IoU 1.0 and a 'person' at IoU 0.9 -> the person is credited
    assigned, false_alarms = assign_detections(truth, np.array([0, 1, 2]), dets, np.array([1, 0, 2, 0]), 0.5)
    # truth 1 (car) is found but called 'dog'; truth 2 is missed; the 'car' box and the far box are false alarms
    assert assigned.tolist() == [0, 2, -1]
    assert sorted(false_alarms.tolist()) == [0, 1]
    assert match_boxes(truth, np.array([0, 1, 2]), dets, np.array([1, 0, 2, 0]), 0.5, same_class=False) == [
        (0, 0),
        (1, 2),
    ]
