"""The ONNX Runtime backend and the classification path, with the real ONet face classifier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from agent.accuracy.metrics import confusion_matrix
from agent.backends.base import BuildRequest
from agent.backends.onnxruntime import OnnxRuntimeBackend
from agent.build import engine as building
from agent.config.sections import Config, SourceConfig
from agent.model.info import read_model_info
from agent.model.pipeline import Pipeline, make_decoder
from agent.sources.files import ImageFolderSource, VideoFileSource
from agent.sources.frames import Frame
from agent.sources.open import open_source
from agent.util.errors import InputError


def test_onet_declared_spec_resolves(demo_config) -> None:
    from agent.model.pipeline import prepare_model

    model = prepare_model(demo_config.model)
    assert model.spec.layout == "NHWC" and (model.spec.width, model.spec.height) == (48, 48)
    assert model.spec.batch == 1 and model.output == "softmax_2" and model.labels == ["non_face", "face"]
    assert model.spec.mean == (127.5, 127.5, 127.5) and model.spec.transpose_hw


def test_fp32_onet_on_lfw_gives_the_known_confusion_matrix(demo_config, demo_dir: Path) -> None:
    report = building.build(demo_config)
    engine, model = building.load_built(demo_config, report)
    pipeline = Pipeline(engine, model, make_decoder(demo_config.model, model))
    with VideoFileSource(str(demo_dir / "stream.avi")) as source:
        results = pipeline.infer_frames(list(source))
    truth = [model.labels.index(t) for t in (demo_dir / "truth.txt").read_text().split()]
    predicted = [r["predicted"] for r in results]
    matrix = confusion_matrix(truth, predicted, 2)
    # rows truth (non_face, face), columns prediction: TN=100 FP=0 / FN=0 TP=100
    assert matrix.tolist() == [[100, 0], [0, 100]]


def test_optimized_engine_matches_the_source_model(demo_cfg, onet_path: str, tmp_path: Path) -> None:
    backend = OnnxRuntimeBackend()
    engine_path = str(tmp_path / "engine.onnx")
    out = backend.build(
        BuildRequest(onet_path, "fp32", {"input_3": (1, 48, 48, 3)}, {"graph_optimization": "all"}), engine_path
    )
    assert out.precision == "fp32"
    x = np.random.default_rng(1).standard_normal((1, 48, 48, 3)).astype(np.float32)
    built = backend.load(engine_path, {}).infer({"input_3": x})
    plain = backend.load(onet_path, {"graph_optimization": "disable"}).infer({"input_3": x})
    assert set(built) == {"softmax_2", "dense_5", "dense_6"}
    for name in built:
        np.testing.assert_allclose(built[name], plain[name], rtol=1e-4, atol=1e-5)
    outputs, stages = backend.load(engine_path, {}).infer_timed({"input_3": x})
    assert list(stages) == ["compute"] and stages["compute"] > 0


def test_backend_refuses_what_it_cannot_build(onet_path: str, tmp_path: Path) -> None:
    backend = OnnxRuntimeBackend()
    with pytest.raises(InputError, match="fp16"):
        backend.build(BuildRequest(onet_path, "fp16", {"input_3": (1, 48, 48, 3)}), str(tmp_path / "e.onnx"))
    with pytest.raises(InputError, match="declares"):
        backend.build(BuildRequest(onet_path, "fp32", {"input_3": (1, 24, 24, 3)}), str(tmp_path / "e.onnx"))


def test_garbage_model_is_refused_with_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not a model")
    with pytest.raises(InputError, match=str(bad)):
        read_model_info(str(bad))
    with pytest.raises(InputError, match="not found"):
        read_model_info(str(tmp_path / "missing.onnx"))


def tiny_nchw_model(path: Path, batch: object = "N") -> None:
    """A 1x3xHxW -> [N, 3] model: the mean of each channel (known answer)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])
    node = helper.make_node("GlobalAveragePool", ["x"], ["p"])
    flat = helper.make_node("Flatten", ["p"], ["y"])
    graph = helper.make_graph([node, flat], "tiny", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def test_nchw_bgr_preprocessing_reaches_the_model(tmp_path: Path, demo_cfg) -> None:
    from agent.config.load import load_config
    from agent.model.pipeline import prepare_model

    tiny_nchw_model(tmp_path / "tiny.onnx")
    cfg = Config.from_node(
        load_config(
            None,
            [
                f"model.path={tmp_path / 'tiny.onnx'}",
                "model.input.color=BGR",
                "model.input.scale=0.5",
                "model.classification.activation=none",
                "model.classification.top_k=3",
                f"paths.state_dir={tmp_path}",
            ],
        )
    )
    model = prepare_model(cfg.model)
    assert model.spec.layout == "NCHW" and model.spec.batch == 1 and model.labels == ["class_0", "class_1", "class_2"]
    report = building.build(cfg)
    engine, model = building.load_built(cfg, report)
    frame = np.zeros((16, 16, 3), np.uint8)
    frame[..., 0], frame[..., 1], frame[..., 2] = 20, 100, 60  # B, G, R
    (result,) = Pipeline(engine, model, make_decoder(cfg.model, model)).infer_frames([Frame(frame, 0, 0.0, "t")])
    assert [t["label"] for t in result["top"]] == ["class_1", "class_2", "class_0"]
    assert [t["score"] for t in result["top"]] == [50.0, 30.0, 10.0]


def test_image_folder_skips_unreadable_files(tmp_path: Path) -> None:
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), np.full((4, 4, 3), 7, np.uint8))
    (tmp_path / "b.png").write_bytes(b"not a png")
    cv2.imwrite(str(tmp_path / "c.png"), np.full((4, 4), 9, np.uint8))
    source = ImageFolderSource(str(tmp_path))
    frames = list(source)
    assert [Path(f.origin).name for f in frames] == ["a.png", "c.png"] and source.skipped == 1
    assert frames[1].image.ndim == 2


def test_file_sources_loop_when_asked(demo_dir: Path) -> None:
    from agent.config.load import load_config

    cfg = load_config(str(demo_dir / "demo.yaml"), ["source.loop=true"])
    with open_source(SourceConfig.from_node(cfg.source)) as source:
        indices = [next(iter(source)).index for _ in range(205)]
    assert indices == list(range(205))
    with pytest.raises(InputError, match="not found"):
        VideoFileSource(str(demo_dir / "nope.avi"))


def test_an_engine_the_runtime_refuses_is_rebuilt_once(demo_config, monkeypatch) -> None:
    from agent.util.errors import EngineIncompatible

    first = building.build(demo_config).to_json()
    refused = []

    class UpgradedRuntime(OnnxRuntimeBackend):
        """Refuses the engine built before, as TensorRT refuses one from another release."""

        def load(self, engine_path, options):
            if not refused:
                refused.append(engine_path)
                raise EngineIncompatible(f"{engine_path}: version tag does not match")
            return super().load(engine_path, options)

    monkeypatch.setattr(building, "get_backend", lambda name: UpgradedRuntime())
    import time

    before = time.time()
    engine, model = building.load_built(demo_config, first)
    (created,) = [
        meta["created"] for key, meta in building.engine_store(demo_config.paths).entries() if key == first["cache_key"]
    ]
    assert created >= before  # a new engine file, not the refused one
    assert refused == [first["engine_path"]]
    assert engine.info["cache_key"] == first["cache_key"] and model.output == "softmax_2"
    again = building.build(demo_config).to_json()
    assert again["cache_hit"] is True  # the rebuilt entry is in the cache again


def test_a_build_that_was_not_promoted_is_never_loaded(demo_config) -> None:
    from agent.util.errors import GateFailed

    refused = {
        "backend": "onnxruntime",
        "precision": "int8",
        "promoted": False,
        "report_path": "/x/build.json",
        "cache_key": "k",
    }
    with pytest.raises(GateFailed, match="int8 engine was not promoted.*see /x/build.json"):
        building.load_built(demo_config, refused)
