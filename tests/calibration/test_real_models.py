"""A real model that needs normalization (PP-OCRv4 det: Constant-node weights, opset 12) builds
to INT8 through `edge-agent build` without manual edits (small input size to stay quick)."""

from __future__ import annotations

from pathlib import Path

import cv2
import onnx
import pytest
import yaml

from agent.build.engine import build
from agent.config.load import load_config
from agent.config.sections import Config
from agent.util import packaged
from calibration.artefacts import cache_from_ranges
from calibration.trt_cache import parse_cache

PPOCR_DET = "pkg:rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"


def photo_folder(target: Path) -> Path:
    """scikit-image's sample photographs and scans (two with text), as BGR PNGs."""
    source = Path(packaged.resolve("pkg:skimage/data/astronaut.png")).parent
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*.png")):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None and min(image.shape[:2]) >= 64:
            cv2.imwrite(str(target / path.name), image)
    return target


@pytest.mark.slow
def test_ppocr_det_builds_to_int8_without_manual_edits(tmp_path: Path) -> None:
    """Normalization, calibration with all three methods, backend builds and the gate all run on
    the model as shipped. Whether INT8 is promoted at this small size is the gate's call; the
    report must say which, consistently (docs/benchmarks.md has the 640x640 figures)."""
    config = {
        "model": {
            "path": PPOCR_DET,
            "task": "detection",
            "input": {
                "size": [160, 160],
                "color": "BGR",
                "scale": 0.00392156862745098,
                "mean": [0.485, 0.456, 0.406],
                "std": [0.229, 0.224, 0.225],
            },
        },
        "backend": {"name": "onnxruntime", "onnxruntime": {"intra_op_threads": 2}},
        "source": {"kind": "images", "uri": str(photo_folder(tmp_path / "frames")), "loop": False},
        "calibration": {"frames": 16, "holdout_fraction": 0.25, "method": "minmax"},
        "gate": {"mixed_precision": False},
        "paths": {"state_dir": str(tmp_path / "state")},
        "mqtt": {"enabled": False},
    }
    path = tmp_path / "ppocr.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    report = build(Config.from_node(load_config(str(path))), "int8").to_json()
    normalization = report["normalization"]
    assert normalization["constants_moved"] > 300 and (normalization["source_opset"], normalization["opset"]) == (
        12,
        13,
    )
    assert report["calibration_frames"] == 12 and report["holdout_frames"] == 4 and report["labeled_images"] == 0
    attempts = report["gate"]["attempts"]
    assert [a["method"] for a in attempts] == ["minmax", "entropy", "percentile"]
    for attempt in attempts:  # every calibrator produced a model the backend built and the gate judged
        assert attempt["built_precision"] == "int8" and attempt["outputs"]["samples"] == 4
        assert attempt["outputs"]["top1_agreement"] is None  # a probability map: cosine decides
    assert report["promoted"] == report["gate"]["passed"] == (report["engine_path"] is not None)
    cache = parse_cache(cache_from_ranges(report["artefacts"]["trt_ranges"], "8.6.1"))
    float_tensors = {o for n in onnx.load(report["normalized_model"]).graph.node for o in n.output}
    assert cache.scales and set(cache.scales) <= float_tensors | {"x"}
