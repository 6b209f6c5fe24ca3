"""edge-agent check on a detector through ONNX Runtime with dlib XML and Pascal VOC labels: the
report's per-class counts, AP@0.5 and AP@[.5:.95] equal an independent matcher and pycocotools
on the engine's own detections, ignored boxes count neither way, and the text summary shows them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest

from agent.accuracy import check as accuracy
from agent.accuracy.metrics import ImageBoxes
from agent.build import engine as building
from agent.cli.main import main
from agent.config.load import load_config
from agent.config.sections import Config
from tests.accuracy.test_check import check_json, detection_config, detection_images
from tests.accuracy.test_coco_metrics import minimal_counts, pycocotools_ap

# The same objects as test_check's YOLO labels, in pixels, plus (in c) an ignored dog box over the
# detector's dog false alarm there.
DLIB_XML = """<?xml version='1.0' encoding='ISO-8859-1'?>
<dataset>
<images>
  <image file='a.png'>
    <box top='25' left='50' width='100' height='50'><label>cat</label></box>
  </image>
  <image file='b.png'>
    <box top='37.5' left='25' width='50' height='25'><label>dog</label></box>
    <box top='6.25' left='6.25' width='12.5' height='12.5'><label>dog</label></box>
  </image>
  <image file='c.png'>
    <box top='70' left='70' width='20' height='20'><label>cat</label></box>
    <box top='6' left='6' width='13' height='13' ignore='1'><label>dog</label></box>
  </image>
</images>
</dataset>
"""

VOC_OBJECT = (
    "<object><name>{}</name><difficult>{}</difficult>"
    "<bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox></object>"
)


def voc_set(folder: Path) -> None:
    detection_images(folder / "JPEGImages")
    (folder / "Annotations").mkdir()
    objects = {
        "a": [("cat", 0, 50, 25, 150, 75)],
        "b": [("dog", 0, 25, 37.5, 75, 62.5), ("dog", 0, 6.25, 6.25, 18.75, 18.75)],
        "c": [("cat", 0, 70, 70, 90, 90), ("dog", 1, 6, 6, 19, 19)],
    }
    for name, rows in objects.items():
        body = "".join(VOC_OBJECT.format(*row) for row in rows)
        text = f"<annotation>\n<filename>{name}.png</filename>\n{body}\n</annotation>\n"
        (folder / "Annotations" / f"{name}.xml").write_text(text, encoding="utf-8")


def engine_boxes(config_path: Path) -> List[ImageBoxes]:
    """The engine's detections on the set, read straight from its pipeline, with the set's labels."""
    cfg = Config.from_node(load_config(str(config_path), []))
    run = building.open_engine(cfg)
    spot = accuracy.load_spot_set(cfg.accuracy, "detection", run.labels)
    images = []
    for sample, frame, result in zip(spot.samples, spot.frames, run.pipeline.infer_frames(spot.frames)):
        dets = result["detections"]
        images.append(
            ImageBoxes(
                sample.truth.pixel_boxes(*frame.image.shape[1::-1]),
                sample.truth.classes,
                [d["box"] for d in dets],
                [d["score"] for d in dets],
                [d["index"] for d in dets],
                sample.truth.ignore,
            )
        )
    return images


def assert_report(report: Dict[str, Any], images: List[ImageBoxes]) -> None:
    assert report["exit_code"] == 0 and report["samples"] == 3 and report["skipped"] == 0
    assert report["labeled_boxes"] == 4 and report["ignored_boxes"] == 1
    # the dog false alarm in c lies on the ignored box: one dog false alarm is left (in a)
    assert report["confusion_matrix"] == [[1, 0, 1], [1, 1, 0], [1, 1, 0]]
    regular = [
        ImageBoxes(
            i.truth_boxes[~i.truth_ignore], i.truth_classes[~i.truth_ignore], i.det_boxes, i.det_scores, i.det_classes
        )
        for i in images
    ]
    expected = minimal_counts(regular, 2, 0.5)
    expected[1]["fp"] -= 1  # the matcher knows no ignored boxes: the detection on it is not a false alarm
    per = report["per_class"]
    assert [{k: per[n][k] for k in ("tp", "fp", "fn")} for n in ("cat", "dog")] == expected
    assert (per["dog"]["precision"], per["dog"]["recall"]) == (0.5, 0.5)
    theirs, ap, ap50 = pycocotools_ap(images, 2)
    for name, reference in zip(("cat", "dog"), theirs):
        assert reference is not None
        assert per[name]["ap50"] == pytest.approx(reference[0], abs=1e-6)
        assert per[name]["ap50_95"] == pytest.approx(float(np.mean(reference)), abs=1e-6)
    assert report["macro"]["ap50"] == pytest.approx(ap50, abs=1e-6)
    assert report["macro"]["ap50_95"] == pytest.approx(ap, abs=1e-6)


def test_check_with_dlib_xml_labels(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "spot"
    detection_images(data)
    (data / "faces.xml").write_text(DLIB_XML, encoding="latin-1")
    config = detection_config(tmp_path, data / "faces.xml", "auto")
    report = check_json(capsys, "-c", str(config))
    assert report["spot_set"]["format"] == "dlib"
    assert_report(report, engine_boxes(config))
    assert main(["check", "-c", str(config)]) == 0
    lines = {line.split()[0]: line.split()[1:] for line in reversed(capsys.readouterr().out.splitlines()) if line}
    dog = report["per_class"]["dog"]
    assert lines["dog"][-10:] == [
        "tp",
        "1",
        "fp",
        "1",
        "fn",
        "1",
        "AP50",
        f"{dog['ap50']:.3f}",
        "AP50:95",
        f"{dog['ap50_95']:.3f}",
    ]
    macro = report["macro"]
    assert lines["mean"][-7:] == [
        "AP50",
        f"{macro['ap50']:.3f}",
        "AP50:95",
        f"{macro['ap50_95']:.3f}",
        "at",
        "match_iou",
        "0.5",
    ]


def test_check_with_voc_labels(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "voc"
    voc_set(data)
    config = detection_config(tmp_path, data, "auto")
    report = check_json(capsys, "-c", str(config))
    assert report["spot_set"]["format"] == "voc"
    assert_report(report, engine_boxes(config))
