"""dlib's imglab XML and Pascal VOC XML spot sets: the real files from Debian's libdlib19.1 and
labelme-examples, and malformed copies whose errors must name the file and line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from agent.accuracy.labelsets import detect_format, load_dlib, load_set, load_voc
from agent.util.errors import InputError

DEBIAN = Path(__file__).resolve().parents[1] / "fixtures" / "debian"
FACES = DEBIAN / "libdlib19.1/usr/share/doc/libdlib19.1/examples/faces"
VOC = DEBIAN / "labelme-examples/usr/share/doc/labelme-examples/examples/bbox_detection/data_dataset_voc"


@pytest.fixture
def faces() -> Path:
    if not FACES.is_dir():
        pytest.skip("dlib's face photos are absent: run scripts/debian_fixtures.sh")
    return FACES


@pytest.fixture
def voc() -> Path:
    if not VOC.is_dir():
        pytest.skip("labelme's VOC examples are absent: run scripts/debian_fixtures.sh")
    return VOC


def test_dlibs_face_sets_nine_photos_43_faces(faces: Path) -> None:
    sets = [load_set(str(faces / name), "auto", "detection", ["face"]) for name in ("training.xml", "testing.xml")]
    assert [len(s.items) for s in sets] == [4, 5] and all(not s.errors and not s.skipped for s in sets)
    assert sum(len(item.classes) for s in sets for item in s.items) == 43
    first = sets[0].items[0]
    assert Path(first.path).name == "2007_007763.jpg" and not first.normalized and not first.ignore.any()
    # <box top='90' left='194' width='37' height='37'/>: pixels 194..230 wide, so x2 = 194 + 37
    np.testing.assert_array_equal(first.boxes[0], [194, 90, 231, 127])
    assert detect_format(str(faces / "training.xml"), "detection") == "dlib"
    # the landmarks file has <part> elements inside its boxes: read the same boxes
    marks = load_dlib(str(faces / "testing_with_face_landmarks.xml"), ["face"])
    np.testing.assert_array_equal(
        np.concatenate([i.boxes for i in marks.items]), np.concatenate([i.boxes for i in sets[1].items])
    )


def copy_dlib(faces: Path, tmp_path: Path, old: str, new: str) -> Path:
    for image in faces.glob("*.jpg"):
        shutil.copy(image, tmp_path / image.name)
    text = (faces / "training.xml").read_text(encoding="latin-1")
    assert old in text
    (tmp_path / "training.xml").write_text(text.replace(old, new, 1), encoding="latin-1")
    return tmp_path / "training.xml"


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("width='37' height='37'/>", "width='37'/>", ":8: <box> height None is not a number; image 2007_007763.jpg"),
        ("top='90'", "top='ninety'", ":8: <box> top 'ninety' is not a number"),
        ("width='37' height='37'/>", "width='0' height='37'/>", ":8: <box> needs a positive width and height"),
        ("height='37'/>", "height='37'><label>cat</label></box>", ":8: label 'cat' is not a class (face)"),
        ("height='37'/>", "height='37' ignore='maybe'/>", ":8: <box> ignore 'maybe' is not 0 or 1"),
        ("file='2008_002079.jpg'", "file='gone.jpg'", ":16: <image> file 'gone.jpg' not found"),
    ],
)
def test_malformed_dlib_boxes_skip_their_image_naming_the_line(
    faces: Path, tmp_path: Path, old: str, new: str, message: str
) -> None:
    labeled = load_dlib(str(copy_dlib(faces, tmp_path, old, new)), ["face"])
    assert labeled.skipped == 1 and len(labeled.items) == 3
    assert labeled.errors[0].startswith(str(tmp_path / "training.xml") + ":") and message in labeled.errors[0]


def test_dlib_labels_ignore_flags_and_the_default_class(faces: Path, tmp_path: Path) -> None:
    path = copy_dlib(
        faces,
        tmp_path,
        "<box top='90' left='194' width='37' height='37'/>",
        "<box top='90' left='194' width='37' height='37' ignore='1'><label>person</label></box>",
    )
    labeled = load_dlib(str(path), ["face", "person"], default_label="face")
    first = labeled.items[0]
    assert first.classes.tolist() == [1, 0, 0, 0, 0, 0, 0] and first.ignore.tolist() == [True] + [False] * 6
    with pytest.raises(InputError, match="has no <label> and the model has 2 classes; set accuracy.default_label"):
        load_dlib(str(path), ["face", "person"])  # two classes and no default: unlabeled boxes are errors
    with pytest.raises(InputError, match="accuracy.default_label: 'dog' is not a class"):
        load_dlib(str(path), ["face", "person"], default_label="dog")


def test_files_that_are_not_dlib_xml(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_text("<dataset><images><image file='x.jpg'>\n<box top='1'", encoding="utf-8")
    with pytest.raises(InputError, match=r"a.xml:2: not well-formed XML"):
        load_dlib(str(tmp_path / "a.xml"), ["face"])
    (tmp_path / "b.xml").write_text("<annotation/>", encoding="utf-8")
    with pytest.raises(InputError, match=r"b.xml:1: not dlib XML \(root element <annotation>"):
        load_dlib(str(tmp_path / "b.xml"), ["face"])
    (tmp_path / "c.xml").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY e "x">]>\n<dataset>&e;</dataset>', encoding="utf-8"
    )
    with pytest.raises(InputError, match="c.xml:2: document type declarations are not accepted"):
        load_dlib(str(tmp_path / "c.xml"), ["face"])


def test_labelmes_voc_annotations(voc: Path) -> None:
    assert detect_format(str(voc), "detection") == "voc"
    assert detect_format(str(voc / "Annotations"), "detection") == "voc"
    labeled = load_set(str(voc), "auto", "detection", ["person", "bus", "car"])
    assert not labeled.errors and [Path(i.path).name for i in labeled.items] == [
        "2011_000003.jpg",
        "2011_000006.jpg",
        "2011_000025.jpg",
    ]
    assert [i.classes.tolist() for i in labeled.items] == [[0, 0], [0, 0, 0, 0], [1, 1, 2]]
    np.testing.assert_allclose(labeled.items[0].boxes[1], [365, 83, 500, 333])
    assert Path(labeled.items[0].path).parent.name == "JPEGImages"
    assert labeled.sample_id(labeled.items[0].path) == "JPEGImages/2011_000003.jpg"


def copy_voc(voc: Path, tmp_path: Path, old: str, new: str) -> Path:
    root = tmp_path / "voc"
    shutil.copytree(voc / "JPEGImages", root / "JPEGImages")
    shutil.copytree(voc / "Annotations", root / "Annotations")
    target = root / "Annotations" / "2011_000003.xml"
    text = target.read_text(encoding="utf-8")
    assert old in text
    target.write_text(text.replace(old, new, 1), encoding="utf-8")
    return root


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("<xmin>191.0</xmin>", "<xmin>left</xmin>", ":19: <xmin> xmin 'left' is not a number"),
        ("<xmin>191.0</xmin>", "", ":18: <bndbox> xmin None is not a number"),
        ("<xmin>191.0</xmin>", "<xmin>400</xmin>", ":18: <bndbox> [400.0, 107.369"),
        ("<name>person</name>", "<name>horse</name>", ":13: <object> <name> 'horse' is not a class"),
        ("<difficult/>", "<difficult>yes</difficult>", ":17: <difficult> 'yes' is not 0 or 1"),
        ("<filename>2011_000003.jpg</filename>", "<filename>x.jpg</filename>", ":1: <filename> 'x.jpg' not found"),
        ("</annotation>\n", "", ":37: not well-formed XML"),
    ],
)
def test_malformed_voc_files_are_skipped_naming_file_and_line(
    voc: Path, tmp_path: Path, old: str, new: str, message: str
) -> None:
    labeled = load_voc(str(copy_voc(voc, tmp_path, old, new)), ["person", "bus", "car"])
    assert labeled.skipped == 1 and len(labeled.items) == 2
    assert labeled.errors[0].startswith(str(tmp_path / "voc" / "Annotations" / "2011_000003.xml") + ":")
    assert message in labeled.errors[0]


def test_voc_difficult_objects_are_ignored_and_empty_folders_refused(voc: Path, tmp_path: Path) -> None:
    root = copy_voc(voc, tmp_path, "<difficult/>", "<difficult>1</difficult>")
    first = load_voc(str(root), ["person", "bus", "car"]).items[0]
    assert first.ignore.tolist() == [True, False]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no VOC annotation files"):
        load_voc(str(tmp_path / "empty"), ["person"])
    assert detect_format(str(tmp_path / "empty"), "detection") == "yolo"
