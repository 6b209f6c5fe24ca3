"""Spot-labeled sets from issue 15, case 10: duplicate ids, wrong-case and empty class folders,
a CSV with a UTF-8 byte order mark."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.accuracy.labelsets import load_csv, load_folders, load_jsonl
from agent.util.errors import InputError
from tests.accuracy.test_labelsets import LABELS, image


def test_an_image_listed_with_conflicting_labels_is_refused_naming_the_ids_and_lines(tmp_path: Path) -> None:
    image(tmp_path / "img" / "a.png")
    image(tmp_path / "img" / "b.png")
    manifest = tmp_path / "set.csv"
    manifest.write_text("img/a.png,cat\nimg/b.png,dog\nimg/a.png,dog\nimg/a.png,cat\n", encoding="utf-8")
    with pytest.raises(InputError) as raised:
        load_csv(str(manifest), LABELS)
    message = str(raised.value)
    assert f"{manifest}: 1 image(s) listed with conflicting labels" in message
    assert f"img/a.png ({manifest}:1: 'cat'; {manifest}:3: 'dog')" in message
    assert "img/b.png" not in message


def test_an_image_listed_twice_with_the_same_label_is_counted_once_and_noted(tmp_path: Path) -> None:
    image(tmp_path / "a.png")
    manifest = tmp_path / "set.jsonl"
    manifest.write_text('{"path": "a.png", "label": "dog"}\n{"path": "./a.png", "label": 1}\n', encoding="utf-8")
    found = load_jsonl(str(manifest), LABELS)
    assert [i for _, i in found.items] == [1]
    assert found.errors == [
        f"{manifest}:2: {tmp_path / 'a.png'} is also listed at {manifest}:1 with the same label; counted once"
    ]


def test_a_csv_with_a_byte_order_mark_reads_its_header(tmp_path: Path) -> None:
    image(tmp_path / "a.png")
    manifest = tmp_path / "set.csv"
    manifest.write_bytes("path,label\na.png,cat\n".encode("utf-8-sig"))
    found = load_csv(str(manifest), LABELS)
    assert [i for _, i in found.items] == [0] and found.errors == []


def test_a_wrong_case_folder_is_named_with_the_label_it_misses(tmp_path: Path) -> None:
    image(tmp_path / "Cat" / "a.png")
    with pytest.raises(
        InputError, match="folder 'Cat' does not match label 'cat' \\(class names are case-sensitive\\)"
    ):
        load_folders(str(tmp_path), LABELS)
    image(tmp_path / "dog" / "b.png")
    found = load_folders(str(tmp_path), LABELS)
    assert [i for _, i in found.items] == [1] and found.skipped == 1
    assert "folder 'Cat' does not match label 'cat'" in found.errors[0]


def test_an_empty_class_folder_is_named_and_its_recall_said_to_be_unmeasured(tmp_path: Path) -> None:
    image(tmp_path / "dog" / "b.png")
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "notes.txt").write_text("x")
    found = load_folders(str(tmp_path), LABELS)
    assert [i for _, i in found.items] == [1]
    expected = f"{tmp_path / 'cat'}: class 'cat' has no images: its recall cannot be measured"
    assert found.errors[-1] == expected + " (it is null in the report and the class is not compared for drift)"
