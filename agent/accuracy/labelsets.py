"""Spot-labeled sets on the device.

Classification: a folder per class, or a CSV / JSONL manifest of (path, label). Detection: YOLO
txt files (one per image), a COCO JSON file, dlib's imglab XML file or a folder of Pascal VOC XML
files. Each bad entry (missing image, unknown label, malformed box) becomes an error naming the
file and the line (or the JSON entry); the rest are still evaluated and the skipped ones are
counted. Labeled boxes can be marked ignored (COCO ``iscrowd``, VOC ``difficult``, dlib
``ignore``): the metrics treat them as COCO treats crowd regions.
"""

from __future__ import annotations

import csv
import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from agent.accuracy import xmlread
from agent.sources.frames import IMAGE_SUFFIXES
from agent.util.errors import InputError

CLASSIFICATION_FORMATS = ("folders", "csv", "jsonl")
DETECTION_FORMATS = ("yolo", "coco", "dlib", "voc")


@dataclass
class _SpotSet:
    """What every spot-labeled set keeps besides its items: class names and what was skipped."""

    labels: List[str]
    errors: List[str] = field(default_factory=list)
    root: str = ""  # sample ids are paths relative to this folder
    skipped: int = 0

    def skip(self, message: str, count: int = 1) -> None:
        self.errors.append(message)
        self.skipped += count

    def sample_id(self, path: str) -> str:
        return _relative(path, self.root)


@dataclass
class LabeledSet(_SpotSet):
    """Classification: images with the index of their true class, plus what was skipped and why."""

    items: List[Tuple[str, int]] = field(default_factory=list)
    conflicts: List[str] = field(default_factory=list)  # an image listed twice with different labels


@dataclass
class BoxLabels:
    """One image's labeled boxes: pixel corners, or YOLO's normalized centre/size until the image size is known."""

    path: str
    boxes: np.ndarray  # [M, 4]
    classes: np.ndarray  # [M]
    normalized: bool = False  # True: boxes are (cx, cy, w, h) in 0..1
    ignore: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # [M] crowd / difficult / ignore

    def __post_init__(self) -> None:
        if len(self.ignore) != len(self.classes):  # not given: no box is ignored
            self.ignore = np.zeros(len(self.classes), dtype=bool)

    def pixel_boxes(self, width: int, height: int) -> np.ndarray:
        """[M, 4] x1, y1, x2, y2 in pixels of an image of this size."""
        boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        if not self.normalized:
            return boxes
        scale = np.array([width, height, width, height], dtype=np.float64)
        half = boxes[:, 2:] / 2
        return np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1) * scale


@dataclass
class DetectionSet(_SpotSet):
    """Detection: images with their labeled boxes, plus what was skipped and why."""

    items: List["BoxLabels"] = field(default_factory=list)


AnySet = Union[LabeledSet, DetectionSet]


def _relative(path: str, root: str) -> str:
    try:
        return Path(path).relative_to(root).as_posix() if root else path
    except ValueError:
        return path


def detect_format(path: str, task: str) -> str:
    """'auto' resolved from what is on disk: a .csv / .jsonl / .json (COCO) / .xml (dlib) file, or a
    folder: for detection VOC when it holds .xml files or an Annotations/ folder, else YOLO txt
    labels; for classification a folder per class."""
    target = Path(path)
    suffix = target.suffix.lower()
    if target.is_file():
        known = {".csv": "csv", ".jsonl": "jsonl", ".json": "coco", ".xml": "dlib"}
        if suffix not in known:
            raise InputError(
                f"accuracy.spot_labels: cannot tell the format of {path} from its suffix; set accuracy.format"
            )
        return known[suffix]
    if target.is_dir():
        if task != "detection":
            return "folders"
        return "voc" if (target / "Annotations").is_dir() or any(target.glob("*.xml")) else "yolo"
    raise InputError(f"accuracy.spot_labels: not found: {path}")


def load_set(
    path: Optional[str], fmt: str, task: str, labels: Sequence[str], default_label: Optional[str] = None
) -> AnySet:
    """The spot-labeled set at ``path`` in format ``fmt`` ('auto' looks) for a task's classes
    (``default_label``: the class of dlib boxes without a label)."""
    if not path:
        raise InputError("accuracy.spot_labels: no spot-labeled set is configured (set it, or pass --labels)")
    fmt = detect_format(path, task) if fmt == "auto" else fmt
    allowed = DETECTION_FORMATS if task == "detection" else CLASSIFICATION_FORMATS
    if fmt not in allowed:
        raise InputError(f"accuracy.format: {fmt} is not a {task} format (use one of {', '.join(allowed)})")
    loaders: Dict[str, Callable[[str, Sequence[str]], AnySet]] = {
        "folders": load_folders,
        "csv": load_csv,
        "jsonl": load_jsonl,
        "yolo": load_yolo,
        "coco": load_coco,
        "dlib": functools.partial(load_dlib, default_label=default_label),
        "voc": load_voc,
    }
    return loaders[fmt](path, labels)


def load_folders(root: str, labels: Sequence[str]) -> LabeledSet:
    """``root/<class name>/<image>``; folders whose name is not a class are errors, not guesses."""
    base = Path(root)
    if not base.is_dir():
        raise InputError(f"accuracy.spot_labels: folder not found: {root}")
    result = LabeledSet(list(labels), root=str(base))
    index = {name: i for i, name in enumerate(labels)}
    by_case = {name.casefold(): name for name in labels}
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        if folder.name not in index:
            near = by_case.get(folder.name.casefold())
            why = (
                f"folder {folder.name!r} does not match label {near!r} (class names are case-sensitive)"
                if near
                else f"folder {folder.name!r} is not a class ({', '.join(labels)})"
            )
            result.skip(f"{folder}: {why}; {len(files)} file(s) skipped", len(files))
            continue
        before = len(result.items)
        for path in files:
            if path.suffix.lower() in IMAGE_SUFFIXES:
                result.items.append((str(path), index[folder.name]))
            else:
                result.skip(f"{path}: not an image ({path.suffix or 'no suffix'}); skipped")
        if len(result.items) == before:
            result.errors.append(
                f"{folder}: class {folder.name!r} has no images: its recall cannot be measured (it is null in the "
                "report and the class is not compared for drift)"
            )
    if not result.items:
        details = "; ".join(result.errors[:3])
        raise InputError(
            f"accuracy.spot_labels: no labeled images under {root} (expected {root}/<class>/<image>)"
            + (f": {details}" if details else "")
        )
    return result


def _class_index(value: Any, labels: Sequence[str]) -> int:
    """A class name, or an index given as an int or digits; ValueError naming the classes otherwise."""
    if isinstance(value, str) and value in labels:
        return list(labels).index(value)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, str))
        or not str(value).isdigit()
        or int(value) >= len(labels)
    ):
        raise ValueError(f"unknown label {value!r} (classes: {', '.join(labels)})")
    return int(value)


def _add_manifest_row(
    result: LabeledSet, base: Path, where: str, path_value: Any, label: Any, seen: Dict[str, Tuple[str, int]]
) -> None:
    """One (path, label) entry; ``seen``: image -> (where, class index) of its first entry."""
    if not isinstance(path_value, str) or not path_value.strip():
        result.skip(f"{where}: no image path; skipped")
        return
    image = Path(path_value.strip())
    image = image if image.is_absolute() else base / image
    try:
        index = _class_index(label.strip() if isinstance(label, str) else label, result.labels)
    except ValueError as exc:
        result.skip(f"{where}: {exc}; skipped")
        return
    if not image.is_file():
        result.skip(f"{where}: image not found: {image}; skipped")
        return
    first = seen.get(str(image))
    if first is not None:
        if first[1] == index:
            result.errors.append(f"{where}: {image} is also listed at {first[0]} with the same label; counted once")
        else:
            result.conflicts.append(
                f"{result.sample_id(str(image))} ({first[0]}: {result.labels[first[1]]!r}; {where}: "
                f"{result.labels[index]!r})"
            )
        return
    seen[str(image)] = (where, index)
    result.items.append((str(image), index))


def _open_manifest(path: str) -> Tuple[Path, str]:
    manifest = Path(path)
    try:
        return manifest, manifest.read_text(encoding="utf-8-sig")  # a byte order mark (Excel's CSV) is not text
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"accuracy.spot_labels: cannot read {path}: {exc}") from None


def _finish(result: AnySet, path: str, what: str) -> AnySet:
    if isinstance(result, LabeledSet) and result.conflicts:
        raise InputError(
            f"accuracy.spot_labels: {path}: {len(result.conflicts)} image(s) listed with conflicting labels: "
            + "; ".join(result.conflicts)
        )
    if not result.items:
        details = "; ".join(result.errors[:3])
        raise InputError(f"accuracy.spot_labels: no usable {what} in {path}" + (f" ({details})" if details else ""))
    return result


def load_csv(path: str, labels: Sequence[str]) -> LabeledSet:
    """Rows ``path,label`` (an optional header row names exactly these two columns); image paths
    are relative to the manifest's folder."""
    manifest, text = _open_manifest(path)
    result = LabeledSet(list(labels), root=str(manifest.parent))
    seen: Dict[str, Tuple[str, int]] = {}
    reader = csv.reader(text.splitlines())
    for row in reader:
        where = f"{manifest}:{reader.line_num}"
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if reader.line_num == 1 and [c.lower() for c in cells] == ["path", "label"]:
            continue
        if len(cells) != 2:
            result.skip(f"{where}: expected 2 columns (path,label), got {len(cells)}; skipped")
            continue
        _add_manifest_row(result, manifest.parent, where, cells[0], cells[1], seen)
    return _finish(result, path, "rows")  # type: ignore[return-value]


def load_jsonl(path: str, labels: Sequence[str]) -> LabeledSet:
    """One JSON object a line: ``{"path": ..., "label": ...}``; paths relative to the manifest's folder."""
    manifest, text = _open_manifest(path)
    result = LabeledSet(list(labels), root=str(manifest.parent))
    seen: Dict[str, Tuple[str, int]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{manifest}:{number}"
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            result.skip(f"{where}: not valid JSON ({exc}); skipped")
            continue
        if not isinstance(entry, dict) or "path" not in entry or "label" not in entry:
            result.skip(f"{where}: expected an object with keys path and label; skipped")
            continue
        _add_manifest_row(result, manifest.parent, where, entry["path"], entry["label"], seen)
    return _finish(result, path, "lines")  # type: ignore[return-value]


def _yolo_label_file(image: Path, root: Path) -> Path:
    """Ultralytics' rule: .../images/.../x.jpg -> .../labels/.../x.txt; else x.txt beside the image."""
    parts = image.relative_to(root).parts
    if "images" in parts:
        at = len(parts) - 1 - list(reversed(parts)).index("images")
        return root.joinpath(*parts[:at], "labels", *parts[at + 1 :]).with_suffix(".txt")
    return image.with_suffix(".txt")


def parse_yolo_line(line: str, labels: Sequence[str]) -> Tuple[int, List[float]]:
    """'class cx cy w h' (normalized) -> (class index, [cx, cy, w, h]); ValueError saying what is wrong."""
    fields = line.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields 'class cx cy w h', got {len(fields)}")
    if not fields[0].isdigit() or int(fields[0]) >= len(labels):
        raise ValueError(f"class {fields[0]!r} is not a class index 0-{len(labels) - 1}")
    try:
        cx, cy, w, h = (float(v) for v in fields[1:])
    except ValueError:
        raise ValueError(f"box {fields[1:]} is not four numbers") from None
    if not all(math.isfinite(v) for v in (cx, cy, w, h)) or w <= 0 or h <= 0:
        raise ValueError(f"box {fields[1:]} needs a positive width and height")
    if not (0 <= cx <= 1 and 0 <= cy <= 1 and w <= 1.0001 and h <= 1.0001):
        raise ValueError(f"box {fields[1:]} is not normalized to 0..1")
    return int(fields[0]), [cx, cy, w, h]


def _read_yolo_labels(label_file: Path, labels: Sequence[str]) -> BoxLabels:
    """One image's label file (absent: no objects); ValueError naming the file and line."""
    try:
        lines = label_file.read_text(encoding="utf-8", errors="replace").splitlines() if label_file.is_file() else []
    except OSError as exc:
        raise ValueError(f"{label_file}: cannot read ({exc.strerror})") from None
    boxes, classes = [], []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                cls, box = parse_yolo_line(line, labels)
            except ValueError as exc:
                raise ValueError(f"{label_file}:{number}: {exc}") from None
            classes.append(cls)
            boxes.append(box)
    return BoxLabels(
        "", np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(classes, dtype=np.int64), normalized=True
    )


def load_yolo(root: str, labels: Sequence[str]) -> DetectionSet:
    """Images under ``root`` with YOLO txt labels (an image without a label file has no objects)."""
    base = Path(root)
    if not base.is_dir():
        raise InputError(f"accuracy.spot_labels: folder not found: {root}")
    result = DetectionSet(list(labels), root=str(base))
    used = set()
    for image in sorted(p for p in base.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
        label_file = _yolo_label_file(image, base)
        used.add(label_file)
        try:
            item = _read_yolo_labels(label_file, labels)
        except ValueError as exc:
            result.skip(f"{exc}; image {image.name} skipped")
            continue
        item.path = str(image)
        result.items.append(item)
    for orphan in sorted(set(base.rglob("*.txt")) - used):
        if orphan.name != "classes.txt":
            result.skip(f"{orphan}: label file without an image; skipped")
    return _finish(result, root, "images")  # type: ignore[return-value]


def _coco_image_path(base: Path, file_name: str) -> Path:
    direct = base / file_name
    return direct if direct.is_file() else base / "images" / file_name


def load_coco(path: str, labels: Sequence[str]) -> DetectionSet:
    """A COCO JSON file: images, annotations (bbox [x, y, w, h] in pixels) and categories matched
    to the model's classes by name. Images are looked up beside the file, then in images/."""
    manifest, text = _open_manifest(path)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InputError(f"accuracy.spot_labels: {manifest} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise InputError(
            f"accuracy.spot_labels: {manifest} is not COCO JSON (needs lists images, annotations, categories)"
        )
    result = DetectionSet(list(labels), root=str(manifest.parent))
    categories = _coco_categories(data["categories"], labels)
    images: Dict[Any, Dict[str, Any]] = {}
    for i, entry in enumerate(data["images"]):
        where = f"{manifest}: images[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("file_name"), str) or "id" not in entry:
            result.skip(f"{where}: needs id and file_name; skipped")
            continue
        image = _coco_image_path(manifest.parent, entry["file_name"])
        if not image.is_file():
            result.skip(f"{where} (id {entry['id']}): image not found: {image}; skipped")
            continue
        images[entry["id"]] = {"path": str(image), "boxes": [], "classes": [], "ignore": [], "problem": ""}
    for i, ann in enumerate(data["annotations"]):
        where = f"{manifest}: annotations[{i}]" + (
            f" (id {ann.get('id')})" if isinstance(ann, dict) and "id" in ann else ""
        )
        target = images.get(ann.get("image_id")) if isinstance(ann, dict) else None
        if target is None:
            result.errors.append(
                f"{where}: image_id {ann.get('image_id') if isinstance(ann, dict) else None!r} is not a usable image; "
                "annotation ignored"
            )
            continue
        problem = _coco_box_problem(ann, categories)
        if problem and not target["problem"]:
            target["problem"] = f"{where}: {problem}; image {Path(target['path']).name} skipped"
        elif not problem:
            x, y, w, h = (float(v) for v in ann["bbox"])
            target["boxes"].append([x, y, x + w, y + h])
            target["classes"].append(categories[ann["category_id"]])
            target["ignore"].append(bool(ann.get("iscrowd", 0)))
    for entry in images.values():
        if entry["problem"]:
            result.skip(entry["problem"])
        else:
            result.items.append(
                BoxLabels(
                    entry["path"],
                    np.asarray(entry["boxes"], dtype=np.float64).reshape(-1, 4),
                    np.asarray(entry["classes"], dtype=np.int64),
                    ignore=np.asarray(entry["ignore"], dtype=bool),
                )
            )
    return _finish(result, path, "images")  # type: ignore[return-value]


def _coco_categories(entries: List[Any], labels: Sequence[str]) -> Dict[Any, Union[int, str]]:
    """COCO category id -> class index, or the reason the category is not a class."""
    found: Dict[Any, Union[int, str]] = {}
    for i, cat in enumerate(entries):
        if not isinstance(cat, dict):
            continue
        name = cat.get("name")
        found[cat.get("id")] = (
            list(labels).index(name)
            if isinstance(name, str) and name in labels
            else f"categories[{i}] name {name!r} is not a class ({', '.join(labels)})"
        )
    return found


def _coco_box_problem(ann: Dict[str, Any], categories: Dict[Any, Any]) -> str:
    category = categories.get(ann.get("category_id"), f"category_id {ann.get('category_id')!r} is not in categories")
    if isinstance(category, str):
        return category
    bbox = ann.get("bbox")
    if (
        not isinstance(bbox, list)
        or len(bbox) != 4
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)
    ):
        return f"bbox {bbox!r} is not four numbers [x, y, w, h]"
    if bbox[2] <= 0 or bbox[3] <= 0:
        return f"bbox {bbox!r} needs a positive width and height"
    return ""


def _number(element: xmlread.Element, name: str, value: Optional[str]) -> float:
    """A finite number from an attribute or element text; ValueError '<line>: ...' otherwise."""
    try:
        number = float(value) if value is not None else math.nan
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"{element.line}: <{element.tag}> {name} {value!r} is not a number")
    return number


def _flag(element: xmlread.Element, name: str, value: Optional[str]) -> bool:
    """'1' / 'true' set, '0' / 'false' / empty / absent clear (as dlib's string_cast<bool> and VOC's 0/1)."""
    text = (value or "0").strip().lower()
    if text not in ("0", "1", "true", "false"):
        raise ValueError(f"{element.line}: <{element.tag}>{' ' + name if name else ''} {value!r} is not 0 or 1")
    return text in ("1", "true")


def _parse_xml(path: Path, root_tag: str, what: str) -> xmlread.Element:
    root = xmlread.parse(path)
    if root.tag != root_tag:
        raise ValueError(f"{path}:{root.line}: not {what} (root element <{root.tag}>, expected <{root_tag}>)")
    return root


def _dlib_box(box: xmlread.Element, labels: Sequence[str], default: Optional[str]) -> Tuple[List[float], int, bool]:
    """(x1, y1, x2, y2), class index, ignored. dlib stores the inclusive pixel rectangle
    left..left+width-1 (image_dataset_metadata.cpp), which covers left..left+width in pixel coordinates."""
    top, left, width, height = (_number(box, k, box.attrs.get(k)) for k in ("top", "left", "width", "height"))
    if width <= 0 or height <= 0:
        raise ValueError(f"{box.line}: <box> needs a positive width and height, got {width:g} x {height:g}")
    name = box.child_text("label") or default
    if name is None:
        raise ValueError(
            f"{box.line}: <box> has no <label> and the model has {len(labels)} classes; set accuracy.default_label"
        )
    if name not in labels:
        raise ValueError(f"{box.line}: label {name!r} is not a class ({', '.join(labels)})")
    return (
        [left, top, left + width, top + height],
        list(labels).index(name),
        _flag(box, "ignore", box.attrs.get("ignore")),
    )


def _boxes(path: str, rows: List[Tuple[List[float], int, bool]]) -> BoxLabels:
    return BoxLabels(
        path,
        np.asarray([r[0] for r in rows], dtype=np.float64).reshape(-1, 4),
        np.asarray([r[1] for r in rows], dtype=np.int64),
        ignore=np.asarray([r[2] for r in rows], dtype=bool),
    )


def load_dlib(path: str, labels: Sequence[str], default_label: Optional[str] = None) -> DetectionSet:
    """dlib's imglab XML (dlib/data_io/image_dataset_metadata.cpp, the loader and writer imglab
    uses): ``<dataset><images><image file=...><box top= left= width= height= [ignore='1']>
    [<label>name</label>]``. Image paths are relative to the file's folder. A box without a label
    is ``default_label``, or the only class of a one-class model."""
    manifest = Path(path)
    try:
        root = _parse_xml(manifest, "dataset", "dlib XML")
    except ValueError as exc:
        raise InputError(f"accuracy.spot_labels: {exc}") from None
    default = default_label if default_label is not None else (labels[0] if len(labels) == 1 else None)
    if default is not None and default not in labels:
        raise InputError(f"accuracy.default_label: {default!r} is not a class ({', '.join(labels)})")
    result = DetectionSet(list(labels), root=str(manifest.parent))
    images = root.find("images")
    for image in images.findall("image") if images is not None else []:
        where = f"{manifest}:{image.line}"
        file_name = image.attrs.get("file", "")
        target = manifest.parent / file_name
        if not file_name or not target.is_file():
            result.skip(f"{where}: <image> file {file_name!r} not found beside {manifest.name}; skipped")
            continue
        try:
            rows = [_dlib_box(box, labels, default) for box in image.findall("box")]
        except ValueError as exc:
            result.skip(f"{manifest}:{exc}; image {target.name} skipped")
            continue
        result.items.append(_boxes(str(target), rows))
    return _finish(result, path, "images")  # type: ignore[return-value]


def _voc_object(obj: xmlread.Element, labels: Sequence[str]) -> Tuple[List[float], int, bool]:
    """(xmin, ymin, xmax, ymax) as written, class index, difficult."""
    name = obj.child_text("name")
    if name is None or name not in labels:
        raise ValueError(f"{obj.line}: <object> <name> {name!r} is not a class ({', '.join(labels)})")
    bndbox = obj.find("bndbox")
    if bndbox is None:
        raise ValueError(f"{obj.line}: <object> {name!r} has no <bndbox>")
    corners = []
    for key in ("xmin", "ymin", "xmax", "ymax"):
        element = bndbox.find(key) or bndbox
        corners.append(_number(element, key, bndbox.child_text(key)))
    if corners[2] <= corners[0] or corners[3] <= corners[1]:
        raise ValueError(f"{bndbox.line}: <bndbox> {corners} needs xmax > xmin and ymax > ymin")
    difficult = obj.find("difficult")
    return corners, list(labels).index(name), difficult is not None and _flag(difficult, "", difficult.text)


def _voc_image(annotation: Path, base: Path, file_name: str) -> Optional[Path]:
    """Beside the annotation, else in the set's JPEGImages/ (the VOC devkit's layout)."""
    for folder in (annotation.parent, base / "JPEGImages", annotation.parent.parent / "JPEGImages"):
        if file_name and (folder / file_name).is_file():
            return folder / file_name
    return None


def _read_voc(annotation: Path, base: Path, labels: Sequence[str]) -> BoxLabels:
    root = _parse_xml(annotation, "annotation", "Pascal VOC XML")
    file_name = root.child_text("filename") or ""
    image = _voc_image(annotation, base, file_name)
    if image is None:
        raise ValueError(f"{annotation}:{root.line}: <filename> {file_name!r} not found (beside it or in JPEGImages/)")
    try:
        rows = [_voc_object(obj, labels) for obj in root.findall("object")]
    except ValueError as exc:
        raise ValueError(f"{annotation}:{exc}") from None
    return _boxes(str(image), rows)


def load_voc(root: str, labels: Sequence[str]) -> DetectionSet:
    """Pascal VOC XML: one ``<annotation>`` file per image (``root/Annotations/*.xml``, or ``root/*.xml``)
    with ``<filename>`` and ``<object><name>`` ``<bndbox><xmin>...`` in pixels, ``<difficult>1`` ignored."""
    base = Path(root)
    if not base.is_dir():
        raise InputError(f"accuracy.spot_labels: folder not found: {root}")
    folder = base / "Annotations" if (base / "Annotations").is_dir() else base
    files = sorted(folder.glob("*.xml"))
    if not files:
        raise InputError(f"accuracy.spot_labels: no VOC annotation files (*.xml) in {folder}")
    result = DetectionSet(list(labels), root=str(base))
    for annotation in files:
        try:
            result.items.append(_read_voc(annotation, base, labels))
        except ValueError as exc:
            result.skip(f"{exc}; skipped")
    return _finish(result, root, "images")  # type: ignore[return-value]
