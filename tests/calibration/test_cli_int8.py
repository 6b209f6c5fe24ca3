"""End to end with the real ONet, ONNX Runtime and the LFW crops: edge-agent calibrate and
edge-agent build --precision int8|best, the gate, promotion and refusal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import cv2
import numpy as np
import pytest

from agent.accuracy.labelsets import load_folders
from agent.accuracy.metrics import confusion_matrix
from agent.build.engine import load_built
from agent.cli.main import main
from agent.config.load import load_config
from agent.config.sections import Config
from agent.engines.store import EngineStore
from agent.model.pipeline import make_decoder
from agent.sources.frames import Frame, read_image
from calibration.artefacts import cache_from_ranges
from calibration.trt_cache import parse_cache


def cli(capsys: pytest.CaptureFixture, *argv: str) -> Tuple[int, Dict[str, Any]]:
    """Run the CLI; (exit code, parsed JSON stdout). Stderr is kept in ``cli.err``."""
    code = main(list(argv))
    captured = capsys.readouterr()
    cli.err = captured.err  # type: ignore[attr-defined]
    return code, json.loads(captured.out) if captured.out.strip() else {}


def common(demo_dir: Path, state: Path, *extra: str) -> List[str]:
    args = ["-c", str(demo_dir / "demo.yaml"), "--set", f"paths.state_dir={state}", "--json"]
    for item in extra:
        args += ["--set", item]
    return args


def black_folder(root: Path, count: int = 30) -> str:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        cv2.imwrite(str(root / f"{i:03d}.png"), np.zeros((96, 96, 3), np.uint8))
    return str(root)


def spot_confusion(cfg_path: Path, state: Path, report: Dict[str, Any]) -> List[List[int]]:
    cfg = Config.from_node(load_config(str(cfg_path), [f"paths.state_dir={state}"]))
    engine, model = load_built(cfg, report)
    from agent.model.pipeline import Pipeline

    pipeline = Pipeline(engine, model, make_decoder(cfg.model, model))
    labeled = load_folders(cfg.accuracy.spot_labels, model.labels)
    frames = [Frame(read_image(Path(p)), i, 0.0, p) for i, (p, _) in enumerate(labeled.items)]
    predicted = [r["predicted"] for r in pipeline.infer_frames(frames)]
    return confusion_matrix([t for _, t in labeled.items], predicted, len(model.labels)).tolist()


@pytest.mark.parametrize("explicit", [False, True])
def test_calibrate_from_a_video(demo_dir: Path, tmp_path: Path, capsys, explicit: bool) -> None:
    """The configured source (a video file), or the video named with --source."""
    extra = ["--source", str(demo_dir / "stream.avi")] if explicit else []
    code, out = cli(capsys, "calibrate", *common(demo_dir, tmp_path), *extra)
    assert code == 0
    assert len(out["calibration_hash"]) == 64 and out["method"] == "entropy"
    assert 150 <= out["frames"] <= 200 and out["frames_seen"] == 200
    assert out["source"].endswith("stream.avi")
    for key in ("manifest", "qdq_model", "trt_ranges", "calibration_report", "normalized_model"):
        assert Path(out[key]).is_file(), key
    assert "trt_calibration_cache" not in out  # no TensorRT here: the build writes it for the installed release
    manifest = json.loads(Path(out["manifest"]).read_text())
    assert manifest["calibration_hash"] == out["calibration_hash"] and len(manifest["frames"]) == out["frames"]
    assert {"timestamp", "phash", "sha256", "origin"} <= set(manifest["frames"][0])
    cache = parse_cache(cache_from_ranges(out["trt_ranges"], "10.3.0"))
    report = json.loads(Path(out["calibration_report"]).read_text())
    assert report["method"] == "entropy" and report["calibration_hash"] == out["calibration_hash"]
    assert set(report["tensors"]) == set(cache.scales)
    assert all({"amax", "observed_min", "observed_max", "saturation"} <= set(t) for t in report["tensors"].values())


def test_calibrate_from_an_image_folder_with_count_and_method(demo_dir: Path, tmp_path: Path, capsys) -> None:
    code, out = cli(
        capsys,
        "calibrate",
        *common(demo_dir, tmp_path),
        "--source",
        str(demo_dir / "spot_labels"),
        "--frames",
        "30",
        "--method",
        "minmax",
    )
    assert code == 0 and out["frames"] == 30 and out["method"] == "minmax"
    assert "minmax" in out["qdq_model"]


def test_calibrate_camera_on_a_file_source_is_refused(demo_dir: Path, tmp_path: Path, capsys) -> None:
    code, _ = cli(capsys, "calibrate", *common(demo_dir, tmp_path), "--source", "camera")
    assert code == 2
    assert "not a camera" in cli.err  # type: ignore[attr-defined]


def test_int8_build_passes_the_gate_with_fp32_confusion_matrix(demo_dir: Path, tmp_path: Path, capsys) -> None:
    assert cli(capsys, "calibrate", *common(demo_dir, tmp_path))[0] == 0
    code, report = cli(capsys, "build", *common(demo_dir, tmp_path), "--precision", "int8")
    assert code == 0
    for key in ("engine_path", "cache_hit", "precision", "backend", "model_sha256", "excluded_nodes"):
        assert key in report
    assert report["precision"] == "int8" and report["built_precision"] == "int8" and report["promoted"]
    gate = report["gate"]
    assert gate["passed"] and gate["top1_agreement"] == 1.0
    assert gate["per_class_recall_delta"] == {"non_face": 0.0, "face": 0.0}
    assert gate["attempts"][0]["method"] == "entropy" and report["excluded_nodes"] == []
    assert Path(report["report_path"]).is_file()
    fp32 = cli(capsys, "build", *common(demo_dir, tmp_path), "--precision", "fp32")[1]
    int8_matrix = spot_confusion(demo_dir / "demo.yaml", tmp_path, report)
    assert int8_matrix == spot_confusion(demo_dir / "demo.yaml", tmp_path, fp32) == [[100, 0], [0, 100]]
    again = cli(capsys, "build", *common(demo_dir, tmp_path), "--precision", "int8")[1]
    assert again["cache_hit"] and again["engine_path"] == report["engine_path"] and again["gate"]["passed"]


def test_unrepresentative_calibration_fails_the_gate_and_is_not_promoted(
    demo_dir: Path, tmp_path: Path, capsys
) -> None:
    black = black_folder(tmp_path / "black")
    assert (
        cli(capsys, "calibrate", *common(demo_dir, tmp_path, "calibration.dedup_distance=0"), "--source", black)[0] == 0
    )
    code, report = cli(
        capsys, "build", *common(demo_dir, tmp_path, "gate.mixed_precision=false"), "--precision", "int8"
    )
    assert code == 3
    assert "not promoted" in cli.err  # type: ignore[attr-defined]
    assert report["promoted"] is False and report["engine_path"] is None
    gate = report["gate"]
    assert not gate["passed"] and gate["per_class_recall_delta"]["face"] < -1.0
    assert [a["method"] for a in gate["attempts"]] == ["entropy", "minmax", "percentile"]
    assert all(not a["passed"] and a["reasons"] for a in gate["attempts"])
    store = EngineStore(str(tmp_path / "engines"), 1 << 30)
    precisions = [meta["key_fields"]["precision"] for _, meta in store.entries()]
    assert precisions == ["fp32"]  # only the FP32 reference is in the cache
    written = json.loads(Path(report["report_path"]).read_text())
    assert written["promoted"] is False and "not promoted" in written["decision"]
    calibration = json.loads(Path(report["artefacts"]["calibration_report"]).read_text())
    assert calibration["promoted"] is False and calibration["most_saturated"]


def test_best_falls_back_to_fp32_on_onnxruntime_and_says_so(demo_dir: Path, tmp_path: Path, capsys) -> None:
    black = black_folder(tmp_path / "black")
    cli(capsys, "calibrate", *common(demo_dir, tmp_path, "calibration.dedup_distance=0"), "--source", black)
    code, report = cli(
        capsys, "build", *common(demo_dir, tmp_path, "gate.mixed_precision=false"), "--precision", "best"
    )
    assert code == 0
    assert report["precision"] == "best" and report["built_precision"] == "fp32" and report["promoted"]
    assert "FP32" in report["decision"] and "fp16" in report["decision"] and "onnxruntime" in report["decision"]
    assert report["gate"]["passed"] and not report["gate"]["int8_passed"] and Path(report["engine_path"]).is_file()
    assert [a["precision"] for a in report["gate"]["attempts"]] == ["int8"] * 3


@pytest.mark.slow
def test_mixed_precision_rescues_a_bad_calibration(demo_dir: Path, tmp_path: Path, capsys) -> None:
    black = black_folder(tmp_path / "black")
    cli(capsys, "calibrate", *common(demo_dir, tmp_path, "calibration.dedup_distance=0"), "--source", black)
    code, report = cli(capsys, "build", *common(demo_dir, tmp_path), "--precision", "int8")
    assert code == 0 and report["built_precision"] == "int8"
    gate = report["gate"]
    ranked = [r["node"] for r in gate["sensitivity"]]
    assert len(ranked) == 8 and report["excluded_nodes"] == ranked[: len(report["excluded_nodes"])]
    assert 1 <= len(report["excluded_nodes"]) <= 2  # max_excluded_fraction 0.25 of 8 nodes
    assert not gate["attempts"][0]["passed"] and gate["attempts"][-1]["passed"]
    assert gate["per_class_recall_delta"]["face"] >= -1.0


def test_build_without_a_calibration_set_collects_one(demo_dir: Path, tmp_path: Path, capsys) -> None:
    code, report = cli(capsys, "build", *common(demo_dir, tmp_path), "--precision", "int8")
    assert code == 0 and report["calibration_collected_now"] and report["gate"]["passed"]
    assert (tmp_path / "calibration" / "current.json").is_file()


def test_fp32_build_keeps_its_fields(demo_dir: Path, tmp_path: Path, capsys) -> None:
    code, report = cli(capsys, "build", *common(demo_dir, tmp_path), "--precision", "fp32")
    assert code == 0 and report["precision"] == "fp32" and report["backend"] == "onnxruntime"
    assert report["cache_hit"] is False and Path(report["engine_path"]).is_file() and len(report["model_sha256"]) == 64


def test_python_api_reports_progress_and_writes_the_report(demo_config) -> None:
    from agent.build.engine import build

    steps: List[tuple] = []
    report = build(demo_config, "int8", progress=lambda *step: steps.append(step)).to_json()
    labels = {s[0] for s in steps}
    assert labels == {"calibration frames", "INT8 search"}
    assert [s[1:4:2] for s in steps if s[0] == "INT8 search"] == [(1, "entropy: passed")]
    written = Path(report["report_path"])
    assert written.parent == Path(demo_config.paths.state_dir) / "reports"
    assert json.loads(written.read_text())["gate"]["passed"] is True
