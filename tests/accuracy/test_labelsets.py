"""Spot-labeled set readers: every bad entry names its file and line, the rest still load."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.accuracy.labelsets import (
    detect_format,
    load_coco,
    load_csv,
    load_jsonl,
    load_set,
    load_yolo,
    parse_yolo_line,
)
from agent.util.errors import InputError

LABELS = ["cat", "dog"]


def image(path: Path, width: int = 40, height: int = 20) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((height, width, 3), 128, dtype=np.uint8))
    return path


def test_csv_manifest_with_header_and_bad_rows(tmp_path: Path) -> None:
    image(tmp_path / "img" / "a.png")
    image(tmp_path / "img" / "b.png")
    manifest = tmp_path / "set.csv"
    manifest.write_text(
        "path,label\nimg/a.png,cat\nimg/b.png,1\nimg/missing.png,cat\nimg/a.png,horse\nimg/a.png\n\n", encoding="utf-8"
    )
    found = load_csv(str(manifest), LABELS)
    assert [(Path(p).name, i) for p, i in found.items] == [("a.png", 0), ("b.png", 1)]
    assert found.skipped == 3
    assert found.errors[0].startswith(f"{manifest}:4: image not found")
    assert found.errors[1] == f"{manifest}:5: unknown label 'horse' (classes: cat, dog); skipped"
    assert found.errors[2] == f"{manifest}:6: expected 2 columns (path,label), got 1; skipped"
    assert found.sample_id(found.items[0][0]) == "img/a.png"


def test_jsonl_manifest(tmp_path: Path) -> None:
    image(tmp_path / "a.png")
    image(tmp_path / "b.png")
    manifest = tmp_path / "set.jsonl"
    lines = [
        '{"path": "a.png", "label": "dog"}',
        "{not json",
        '{"path": "a.png"}',
        '{"path": "a.png", "label": 5}',
        '{"path": "b.png", "label": 0}',
    ]
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    found = load_jsonl(str(manifest), LABELS)
    assert [i for _, i in found.items] == [1, 0]
    assert found.skipped == 3
    assert found.errors[0].startswith(f"{manifest}:2: not valid JSON")
    assert found.errors[1] == f"{manifest}:3: expected an object with keys path and label; skipped"
    assert found.errors[2] == f"{manifest}:4: unknown label 5 (classes: cat, dog); skipped"


def test_a_manifest_with_nothing_usable_is_an_input_error(tmp_path: Path) -> None:
    manifest = tmp_path / "set.csv"
    manifest.write_text("gone.png,cat\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"no usable rows .*set.csv:1: image not found"):
        load_csv(str(manifest), LABELS)


def test_yolo_labels_images_and_labels_folders(tmp_path: Path) -> None:
    image(tmp_path / "images" / "a.png", 40, 20)
    image(tmp_path / "images" / "b.png")
    image(tmp_path / "images" / "c.png")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n1 0.25 0.25 0.1 0.2\n", encoding="utf-8")
    (tmp_path / "labels" / "c.txt").write_text("0 0.5 0.5 0.5 0.5\n7 0.5 0.5 0.1 0.1\n", encoding="utf-8")
    (tmp_path / "labels" / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n", encoding="utf-8")
    found = load_yolo(str(tmp_path), LABELS)
    by_name = {Path(item.path).name: item for item in found.items}
    assert sorted(by_name) == ["a.png", "b.png"]  # b has no label file: an image without objects
    np.testing.assert_allclose(by_name["a.png"].pixel_boxes(40, 20), [[10, 5, 30, 15], [8, 3, 12, 7]])
    assert by_name["a.png"].classes.tolist() == [0, 1] and len(by_name["b.png"].classes) == 0
    assert found.errors == [
        f"{tmp_path / 'labels' / 'c.txt'}:2: class '7' is not a class index 0-1; image c.png skipped",
        f"{tmp_path / 'labels' / 'orphan.txt'}: label file without an image; skipped",
    ]
    assert found.skipped == 2


@pytest.mark.parametrize(
    "line, message",
    [
        ("0 0.5 0.5 0.2", "expected 5 fields"),
        ("x 0.5 0.5 0.2 0.2", "not a class index"),
        ("0 0.5 a 0.2 0.2", "not four numbers"),
        ("0 0.5 0.5 0 0.2", "positive width"),
        ("0 2 0.5 0.2 0.2", "not normalized"),
    ],
)
def test_malformed_yolo_lines(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_yolo_line(line, LABELS)


def test_coco_json(tmp_path: Path) -> None:
    image(tmp_path / "images" / "a.png")
    image(tmp_path / "b.png")
    image(tmp_path / "c.png")
    coco = {
        "images": [
            {"id": 1, "file_name": "a.png"},
            {"id": 2, "file_name": "b.png"},
            {"id": 3, "file_name": "c.png"},
            {"id": 4, "file_name": "gone.png"},
        ],
        "categories": [{"id": 10, "name": "dog"}, {"id": 11, "name": "cat"}, {"id": 12, "name": "horse"}],
        "annotations": [
            {"id": 100, "image_id": 1, "category_id": 10, "bbox": [1, 2, 10, 5]},
            {"id": 101, "image_id": 1, "category_id": 11, "bbox": [0, 0, 4, 4]},
            {"id": 102, "image_id": 3, "category_id": 12, "bbox": [0, 0, 4, 4]},
            {"id": 103, "image_id": 2, "category_id": 10, "bbox": [0, 0, -4, 4]},
            {"id": 104, "image_id": 9, "category_id": 10, "bbox": [0, 0, 4, 4]},
        ],
    }
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(coco), encoding="utf-8")
    found = load_coco(str(path), LABELS)
    [item] = found.items
    assert Path(item.path).name == "a.png"
    np.testing.assert_allclose(item.pixel_boxes(40, 20), [[1, 2, 11, 7], [0, 0, 4, 4]])
    assert item.classes.tolist() == [1, 0]
    assert found.skipped == 3
    text = "\n".join(found.errors)
    assert f"{path}: images[3] (id 4): image not found" in text
    assert (
        f"{path}: annotations[2] (id 102): categories[2] name 'horse' is not a class (cat, dog); image c.png skipped"
        in text
    )
    assert (
        f"{path}: annotations[3] (id 103): bbox [0, 0, -4, 4] needs a positive width and height; image b.png skipped"
        in text
    )
    assert f"{path}: annotations[4] (id 104): image_id 9 is not a usable image" in text


def test_format_detection_and_task_compatibility(tmp_path: Path) -> None:
    image(tmp_path / "cat" / "a.png")
    (tmp_path / "m.csv").write_text("cat/a.png,cat\n", encoding="utf-8")
    assert detect_format(str(tmp_path), "classification") == "folders"
    assert detect_format(str(tmp_path), "detection") == "yolo"
    assert detect_format(str(tmp_path / "m.csv"), "classification") == "csv"
    assert len(load_set(str(tmp_path / "m.csv"), "auto", "classification", LABELS).items) == 1
    with pytest.raises(InputError, match="accuracy.format: coco is not a classification format"):
        load_set(str(tmp_path), "coco", "classification", LABELS)
    with pytest.raises(InputError, match="not found"):
        load_set(str(tmp_path / "nope"), "auto", "classification", LABELS)
    with pytest.raises(InputError, match="no spot-labeled set is configured"):
        load_set(None, "auto", "classification", LABELS)


def test_coco_crowd_boxes_are_marked_ignored(tmp_path: Path) -> None:
    image(tmp_path / "a.png")
    coco = {
        "images": [{"id": 1, "file_name": "a.png"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10]},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [5, 5, 20, 10], "iscrowd": 1},
        ],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    }
    (tmp_path / "c.json").write_text(json.dumps(coco), encoding="utf-8")
    item = load_coco(str(tmp_path / "c.json"), LABELS).items[0]
    assert item.classes.tolist() == [0, 1] and item.ignore.tolist() == [False, True]
