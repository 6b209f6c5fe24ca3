"""edge-agent check end to end: the real ONet on the LFW crops, baselines, a darkened copy that
must alert, and a detection check through ONNX Runtime with YOLO and COCO labels."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import cv2
import jsonschema
import numpy as np
import pytest
import yaml

from agent.accuracy import baselines
from agent.accuracy import check as accuracy
from agent.build import engine as building
from agent.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


SCHEMA = json.loads((ROOT / "docs" / "schemas" / "accuracy-report.json").read_text(encoding="utf-8"))


def check_json(capsys: pytest.CaptureFixture, *args: str) -> Dict[str, Any]:
    """Run edge-agent check --json in-process; the report must follow the documented schema."""
    code = main(["check", "--json", *args])
    report = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator(SCHEMA).validate(report)
    report["exit_code"] = code
    return report


def demo_args(demo_dir: Path, tmp_path: Path) -> List[str]:
    return ["-c", str(demo_dir / "demo.yaml"), "--set", f"paths.state_dir={tmp_path / 'state'}"]


def copy_set(src: Path, dst: Path, change: Any) -> Path:
    for path in sorted(src.rglob("*.png")):
        out = dst / path.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), change(cv2.imread(str(path))))
    return dst


def test_onet_on_lfw_is_perfect_in_fp32(demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    report = check_json(capsys, *demo_args(demo_dir, tmp_path))
    assert report["exit_code"] == 0
    assert report["task"] == "classification" and report["samples"] == 200 and report["skipped"] == 0
    assert report["classes"] == ["non_face", "face"]
    assert report["confusion_matrix"] == [[100, 0], [0, 100]]
    assert report["binary"] == {"tp": 100, "fp": 0, "fn": 0, "tn": 100} and report["positive_class"] == "face"
    assert report["accuracy"] == 1.0
    face = report["per_class"]["face"]
    assert (face["precision"], face["recall"], face["f1"], face["support"]) == (1.0, 1.0, 1.0, 100)
    assert face["recall_ci95"] == pytest.approx([0.963, 1.0], abs=1e-3)
    assert "drift" not in report  # no baseline yet
    assert report["engine"]["precision"] == "fp32"


def test_baseline_then_a_darkened_copy_alerts_with_exit_3(
    demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = demo_args(demo_dir, tmp_path)
    saved = check_json(capsys, *args, "--save-baseline")
    assert saved["baseline_saved"]["version"] == 1
    record = baselines.latest(str(tmp_path / "state"))
    assert (
        record is not None and record["reference"]["precision"] == "fp32" and len(record["engine"]["outcomes"]) == 200
    )

    same = check_json(capsys, *args)
    assert same["exit_code"] == 0 and same["drift"]["status"] == "ok"
    assert (
        same["drift"]["per_class"]["face"]["recall_delta"] == 0.0
        and same["drift"]["per_class"]["face"]["p_value"] == 1.0
    )
    assert same["drift"]["baseline"]["same_engine"] and same["drift"]["baseline"]["same_spot_set"]

    dark = copy_set(demo_dir / "spot_labels", tmp_path / "dark", lambda im: (im * 0.04).astype(np.uint8))
    result = subprocess.run(
        [sys.executable, "-m", "agent", "check", "--json", *args, "--labels", str(dark)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3, result.stderr
    report = json.loads(result.stdout)
    jsonschema.Draft202012Validator(SCHEMA).validate(report)
    face = report["drift"]["per_class"]["face"]
    assert report["drift"]["status"] == "alert"
    assert report["per_class"]["face"]["recall"] < 0.5 and face["recall_delta"] < -0.5
    assert face["test"] == "mcnemar_exact" and face["p_value"] < 1e-10
    assert report["drift"]["per_class"]["non_face"]["status"] == "ok"
    assert report["drift"]["rules_fired"][0].startswith("face: alert: recall drop")
    assert report["drift"]["vs_fp32_reference"]["status"] == "alert"
    assert not report["drift"]["baseline"]["same_spot_set"]


def test_mild_noise_on_a_few_samples_does_not_page(
    demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """30 spot samples, a few degraded: a small wobble stays below the alert."""
    args = demo_args(demo_dir, tmp_path)
    small = tmp_path / "small"
    for cls in ("face", "non_face"):
        for path in sorted((demo_dir / "spot_labels" / cls).glob("*.png"))[:15]:
            (small / cls).mkdir(parents=True, exist_ok=True)
            (small / cls / path.name).write_bytes(path.read_bytes())
    check_json(capsys, *args, "--labels", str(small), "--save-baseline")
    rng = np.random.default_rng(1)
    noisy = copy_set(
        small, tmp_path / "noisy", lambda im: np.clip(im + rng.normal(0, 60, im.shape), 0, 255).astype(np.uint8)
    )
    report = check_json(capsys, *args, "--labels", str(noisy))
    face = report["drift"]["per_class"]["face"]
    assert face["recall_delta"] < 0 and face["p_value"] >= 0.05
    assert report["drift"]["status"] != "alert" and report["exit_code"] == 0


def test_human_output_plot_and_skipped_entries(demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    manifest = tmp_path / "set.csv"
    rows = [
        f"{demo_dir / 'spot_labels' / 'face' / '000.png'},face",
        f"{demo_dir / 'spot_labels' / 'non_face' / '150.png'},non_face",
        "missing.png,face",
        "x.png,cat",
    ]
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "x.png").write_bytes(b"not an image")
    plot = tmp_path / "cm.png"
    code = main(["check", *demo_args(demo_dir, tmp_path), "--labels", str(manifest), "--plot", str(plot)])
    captured = capsys.readouterr()
    assert code == 0
    assert "classification: 2 samples, 2 skipped, accuracy 1.0000" in captured.out
    assert f"warning: {manifest}:3: image not found" in captured.err
    assert f"warning: {manifest}:4: unknown label 'cat'" in captured.err
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unreadable_images_are_skipped_and_counted(
    demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "set"
    (folder / "face").mkdir(parents=True)
    (folder / "face" / "ok.png").write_bytes((demo_dir / "spot_labels" / "face" / "001.png").read_bytes())
    (folder / "face" / "broken.png").write_bytes(b"\x89PNG truncated")
    report = check_json(capsys, *demo_args(demo_dir, tmp_path), "--labels", str(folder))
    assert report["samples"] == 1 and report["skipped"] == 1
    assert report["errors"] == [f"{folder / 'face' / 'broken.png'}: not a readable image; skipped"]


def test_a_corrupted_baseline_is_reported_not_used(
    demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = demo_args(demo_dir, tmp_path)
    saved = check_json(capsys, *args, "--save-baseline")
    path = Path(saved["baseline_saved"]["path"])
    record = json.loads(path.read_text(encoding="utf-8"))
    record["engine"]["recall"]["face"] = 0.5  # edited by hand, hash left as it was
    path.write_text(json.dumps(record), encoding="utf-8")
    report = check_json(capsys, *args)
    assert "drift" not in report and "does not match its sha256" in report["baseline_error"]


# --- detection through ONNX Runtime: a constant-output YOLOv8-layout model with known boxes ---

DET_LABELS = ["cat", "dog"]


def constant_detector(path: Path) -> Path:
    """Input [1, 3, 64, 64]; output [1, 6, 4] = fixed rows (input pixels): a cat at (16, 24)-(48, 40)
    scored 0.9 and a dog at (4, 4)-(12, 12) scored 0.8; two empty anchors."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rows = np.zeros((1, 6, 4), dtype=np.float32)
    rows[0, :, 0] = [32, 32, 32, 16, 0.9, 0.0]
    rows[0, :, 1] = [8, 8, 8, 8, 0.0, 0.8]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["rows", "nothing"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "constant_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, 4])],
        [numpy_helper.from_array(rows, "rows"), numpy_helper.from_array(np.zeros(1, dtype=np.float32), "zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def detection_config(tmp_path: Path, labels_path: Path, fmt: str) -> Path:
    cfg = {
        "model": {
            "path": str(constant_detector(tmp_path / "det.onnx")),
            "task": "detection",
            "labels": DET_LABELS,
            "input": {"resize": "letterbox", "scale": 1 / 255, "mean": [0.0], "std": [1.0]},
            "detection": {"format": "yolov8"},
        },
        "backend": {"name": "onnxruntime", "onnxruntime": {"intra_op_threads": 1}},
        "accuracy": {"spot_labels": str(labels_path), "format": fmt},
        "paths": {"state_dir": str(tmp_path / "state")},
    }
    path = tmp_path / "det.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def detection_images(folder: Path) -> None:
    """a: 200x100 (letterbox scale 0.32, 16 px pad), b and c: 100x100 (scale 0.64)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (w, h) in {"a": (200, 100), "b": (100, 100), "c": (100, 100)}.items():
        cv2.imwrite(str(folder / f"{name}.png"), np.full((h, w, 3), 90, dtype=np.uint8))


# In frame pixels the cat box lands at a: (50, 25)-(150, 75), b and c: (25, 37.5)-(75, 62.5);
# the dog box at b and c: (6.25, 6.25)-(18.75, 18.75) (in a it is clipped away at the top).
YOLO_LABELS = {
    "a": "0 0.5 0.5 0.5 0.5\n",  # the cat, found
    "b": "1 0.5 0.5 0.5 0.25\n1 0.125 0.125 0.125 0.125\n",  # a dog called cat, a dog found
    "c": "0 0.8 0.8 0.2 0.2\n",  # a cat missed; both boxes in c are false alarms
}
EXPECTED = [[1, 0, 1], [1, 1, 0], [1, 2, 0]]  # rows truth cat, dog, background; columns the same


def assert_detection_report(report: Dict[str, Any]) -> None:
    assert report["exit_code"] == 0
    assert report["task"] == "detection" and report["samples"] == 3 and report["skipped"] == 0
    assert report["matrix_labels"] == ["cat", "dog", "background"]
    assert report["confusion_matrix"] == EXPECTED
    cat, dog = report["per_class"]["cat"], report["per_class"]["dog"]
    assert (cat["recall"], cat["precision"], cat["support"]) == (0.5, pytest.approx(1 / 3), 2)
    assert (dog["recall"], dog["precision"], dog["support"]) == (0.5, pytest.approx(1 / 3), 2)
    assert (cat["tp"], cat["fp"], cat["fn"]) == (1, 2, 1) and (dog["tp"], dog["fp"], dog["fn"]) == (1, 2, 1)
    # 101-point COCO AP: precision 1 (cat) and 0.5 (dog, after a false alarm of equal score in a) up to recall 0.5
    assert cat["ap50"] == pytest.approx(51 / 101) and dog["ap50"] == pytest.approx(0.5 * 51 / 101)
    assert report["macro"]["ap50"] == pytest.approx(0.75 * 51 / 101)
    assert report["labeled_boxes"] == 4 and report["ignored_boxes"] == 0


def test_detection_check_with_yolo_labels(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "spot"
    detection_images(data / "images")
    (data / "labels").mkdir()
    for name, text in YOLO_LABELS.items():
        (data / "labels" / f"{name}.txt").write_text(text, encoding="utf-8")
    config = detection_config(tmp_path, data, "auto")
    report = check_json(capsys, "-c", str(config), "--save-baseline")
    assert_detection_report(report)
    assert report["spot_set"]["format"] == "yolo"  # 'auto' resolved
    again = check_json(capsys, "-c", str(config))
    assert again["drift"]["status"] == "ok" and again["drift"]["per_class"]["cat"]["paired"] == 2
    assert main(["check", "-c", str(config)]) == 0
    human = capsys.readouterr().out
    rows: Dict[str, List[str]] = {}
    for line in human.splitlines():
        if line.strip():
            rows.setdefault(line.split()[0], line.split()[1:])  # the metrics row comes before the matrix row
    assert rows["cat"][:3] == ["0.333", "0.500", "0.400"]
    assert rows["cat"][-10:] == ["tp", "1", "fp", "2", "fn", "1", "AP50", "0.505", "AP50:95", "0.505"]
    assert rows["background"] == ["1", "2", "0"]  # false alarms


def test_detection_check_with_coco_labels(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "spot"
    detection_images(data)
    sizes = {"a": (200, 100), "b": (100, 100), "c": (100, 100)}
    images, annotations = [], []
    for i, (name, text) in enumerate(YOLO_LABELS.items()):
        w, h = sizes[name]
        images.append({"id": i, "file_name": f"{name}.png", "width": w, "height": h})
        for line in text.splitlines():
            cls, cx, cy, bw, bh = (float(v) for v in line.split())
            box = [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h]
            annotations.append({"id": len(annotations), "image_id": i, "category_id": int(cls) + 1, "bbox": box})
    coco = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    }
    (data / "coco.json").write_text(json.dumps(coco), encoding="utf-8")
    config = detection_config(tmp_path, data / "coco.json", "coco")
    assert_detection_report(check_json(capsys, "-c", str(config)))


def test_record_baseline_is_the_promotion_entry_point(demo_config: Any) -> None:
    run = building.open_engine(demo_config)
    saved = accuracy.record_baseline(demo_config, run)
    stored = baselines.latest(demo_config.paths.state_dir, engine_id=run.identity.id)
    assert stored is not None and stored["version"] == saved["version"] == 1 and stored["reason"] == "promotion"
    assert stored["engine"]["recall"] == {"non_face": 1.0, "face": 1.0}
    assert stored["reference"]["outcomes"] == stored["engine"]["outcomes"]  # FP32 ORT is the reference itself


def test_the_schema_refuses_undocumented_keys() -> None:
    report = {
        "task": "classification",
        "samples": 1,
        "skipped": 0,
        "errors": [],
        "classes": ["a"],
        "matrix_labels": ["a"],
        "confusion_matrix": [[1]],
    }
    report.update(
        per_class={}, accuracy=1.0, macro={"precision": 1.0, "recall": 1.0, "f1": 1.0}, ts="2026-01-01T00:00:00Z"
    )
    report.update(
        spot_set={"path": "x", "format": "folders", "sha256": "0" * 64},
        engine={"id": "e", "backend": "b", "precision": "fp32", "model_sha256": "m"},
    )
    jsonschema.Draft202012Validator(SCHEMA).validate(report)
    with pytest.raises(jsonschema.ValidationError, match="Additional properties"):
        jsonschema.Draft202012Validator(SCHEMA).validate({**report, "surprise": 1})


def test_thresholds_that_reject_every_class_get_a_none_column(
    demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sets = [
        "--set",
        "model.classification.positive_class=",
        "--set",
        "model.classification.threshold=0.999",
        "--set",
        "model.classification.top_k=2",
    ]
    report = check_json(capsys, *demo_args(demo_dir, tmp_path), *sets)
    matrix = np.asarray(report["confusion_matrix"])
    assert report["matrix_labels"] == ["non_face", "face", "none"] and "binary" not in report
    assert matrix[:2].sum(axis=1).tolist() == [100, 100] and matrix[2].sum() == 0
    assert matrix[:2, 2].sum() > 0 and matrix[0, 1] == matrix[1, 0] == 0  # unsure crops are rejected, never swapped
    assert report["per_class"]["face"]["recall"] == matrix[1, 1] / 100
    assert report["top_k_accuracy"] == {"k": 2, "accuracy": pytest.approx(np.trace(matrix) / 200)}


def test_plot_without_matplotlib_is_said_before_the_check(
    demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["check", *demo_args(demo_dir, tmp_path), "--plot", str(tmp_path / "cm.png")]) == 2
    captured = capsys.readouterr()
    assert "needs matplotlib, which is not installed: pip install matplotlib" in captured.err and captured.out == ""


def test_detection_labels_must_fit_the_output(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "spot"
    detection_images(data)
    config = detection_config(tmp_path, data, "yolo")
    assert main(["check", "-c", str(config), "--set", "model.labels=[cat]"]) == 2
    assert "model.labels: 1 names, but yolov8 output 'output0' [1, 6, 4] has 2 classes" in capsys.readouterr().err
    assert main(["check", "-c", str(config), "--set", "model.detection.format=yolov5"]) == 2
    assert "model.detection.format: output [1, 6, 4] does not have the yolov5 layout" in capsys.readouterr().err
