"""The detector's gate evidence from the configuration, and the decoder on frames without faces
(held-out calibration frames often have none: a blank frame once failed to decode)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from agent.backends.registry import get_backend
from agent.config.load import load_config
from agent.config.sections import Config
from agent.model.pipeline import prepare_model
from calibration.evaluate import assess_detector, run_detections, set_reference
from calibration.gate import Thresholds
from calibration.promote import gather_evidence
from tests.detection_int8.faces import FACES, SPOT_FILES, centerface_config, have_faces

pytestmark = pytest.mark.skipif(
    not have_faces(), reason="dlib's face photos are absent: run scripts/debian_fixtures.sh"
)


def configured(tmp_path: Path, **accuracy: object) -> Config:
    data = centerface_config(tmp_path, tmp_path)
    data["accuracy"].update(accuracy)
    path = tmp_path / "centerface.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return Config.from_node(load_config(str(path)))


def test_blank_frames_decode_to_no_faces_and_the_reference_agrees_with_itself(tmp_path: Path) -> None:
    import cv2

    config = configured(tmp_path)
    model = prepare_model(config.model)
    blank = [np.full((480, 640, 3), 128, np.uint8), np.zeros((300, 400, 3), np.uint8)]
    photo = cv2.imread(str(FACES / SPOT_FILES[0]))
    evidence = gather_evidence(config.model, config.accuracy, model, blank + [photo])
    assert evidence.detector is not None and evidence.labels == ["face"] and evidence.match_iou == 0.5
    assert len(evidence.labeled) == len(evidence.truth_boxes) == 5
    engine = get_backend("onnxruntime").load(model.path, {"providers": ["CPUExecutionProvider"]})
    found = run_detections(engine, model.spec, evidence.detector, blank)
    assert [len(d.boxes) for d in found] == [0, 0] and found[0].extra["landmarks"].shape == (0, 10)
    set_reference(evidence, engine, lambda outputs: [])
    verdict = assess_detector(evidence, engine, Thresholds())
    assert verdict["passed"] and verdict["per_class_recall"]["face"]["delta_pp"] == 0.0
    boxes = verdict["boxes"]["face"]
    assert boxes["matched"] == boxes["reference_boxes"] > 0 and boxes["mean_iou"] == 1.0
    assert boxes["max_score_diff"] == 0.0


def test_without_a_spot_set_the_gate_says_recall_is_not_part_of_it(tmp_path: Path) -> None:
    config = configured(tmp_path, spot_labels=None)
    evidence = gather_evidence(config.model, config.accuracy, prepare_model(config.model), [])
    assert evidence.labeled == [] and evidence.detector is not None
    assert any("accuracy.spot_labels is not set" in n for n in evidence.notes)
    assert any("no held-out frames" in n for n in evidence.notes)


def test_a_detection_model_without_box_outputs_is_gated_on_raw_outputs(tmp_path: Path) -> None:
    """PP-OCR's text detector (a probability map, task detection) keeps the raw-output gate."""
    data = {
        "model": {
            "path": "pkg:rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
            "task": "detection",
            "input": {"size": [160, 160]},
        },
        "paths": {"state_dir": str(tmp_path / "state")},
    }
    path = tmp_path / "ppocr.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    config = Config.from_node(load_config(str(path)))
    evidence = gather_evidence(config.model, config.accuracy, prepare_model(config.model), [])
    assert evidence.detector is None and not evidence.classify
    assert any("model.detection.format" in n and "raw outputs only" in n for n in evidence.notes), evidence.notes
