"""Acceptance: `edge-agent build --precision int8` on CenterFace calibrates on frames outside the
spot set and promotes or refuses INT8 by the detector gate (per-class recall on dlib's labeled
faces, box agreement with FP32 on held-out frames), the per-class numbers in the --json report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Tuple

import pytest
import yaml

from tests.detection_int8.faces import calibration_folder, centerface_config, have_faces

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not have_faces(), reason="dlib's face photos are absent: run scripts/debian_fixtures.sh"),
]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("centerface-int8")
    path = work / "centerface.yaml"
    path.write_text(yaml.safe_dump(centerface_config(work, calibration_folder(work / "frames"))), encoding="utf-8")
    return path


def build(config: Path, precision: str, *overrides: str) -> Tuple[int, Dict[str, Any]]:
    sets = [arg for o in overrides for arg in ("--set", o)]
    cmd = [sys.executable, "-m", "agent", "build", "-c", str(config), "--precision", precision, "--json", *sets]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=str(REPO), timeout=600)
    start = done.stdout.find("{")
    assert start >= 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.returncode, json.JSONDecoder().raw_decode(done.stdout[start:])[0]


def test_int8_is_promoted_or_refused_with_per_class_numbers(config_file: Path) -> None:
    code, report = build(config_file, "int8")
    gate = report["gate"]
    recall, boxes = gate["per_class_recall"]["face"], gate["boxes"]["face"]
    assert report["labeled_images"] == 5 and report["holdout_frames"] > 0 and report["calibration_frames"] > 0
    assert recall["reference"] >= 0.8  # FP32 finds the labeled faces: the comparison means something
    assert gate["per_class_recall_delta"] == {"face": recall["delta_pp"]}
    assert boxes["reference_boxes"] > 0 and boxes["matched"] + boxes["unmatched_reference"] == boxes["reference_boxes"]
    if report["promoted"]:
        assert code == 0 and report["built_precision"] == "int8" and gate["passed"] and not gate["reasons"]
        assert recall["delta_pp"] >= -1.0  # never promoted with face recall lower by more than 1 point
        assert boxes["mean_iou"] >= 0.9 and boxes["max_score_diff"] <= 0.1
    else:
        assert code == 3 and gate["reasons"] and report["built_precision"] is None


def test_a_strict_box_gate_refuses_int8_and_best_falls_back_to_fp32(config_file: Path) -> None:
    strict = "gate.max_score_diff=0.0001"
    code, report = build(config_file, "int8", strict)
    gate = report["gate"]
    assert code == 3 and report["promoted"] is False and not gate["int8_passed"]
    assert any("class 'face': score difference" in r for r in gate["reasons"]), gate["reasons"]
    assert gate["boxes"]["face"]["max_score_diff"] > 0.0001
    assert "not promoted" in report["decision"]
    code, report = build(config_file, "best", strict)
    assert code == 0 and report["built_precision"] == "fp32" and report["promoted"] is True
    assert "FP32 was built" in report["decision"] and report["gate"]["passed"] and not report["gate"]["int8_passed"]
