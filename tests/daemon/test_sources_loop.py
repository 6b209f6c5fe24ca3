"""The inference loop over several real sources with the real ONet engine at batch 2: one engine
call per batch, each frame's result back to its source, every sink called with the frame."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any, Dict, List, Sequence, Tuple

from agent.config.load import load_config
from agent.config.sections import Config
from agent.daemon import events
from agent.daemon.loop import InferenceLoop, prepare_for
from agent.daemon.swap import Handoff
from agent.mqtt.events import Event
from agent.sources.files import ImageFolderSource, VideoFileSource
from agent.sources.frames import Frame
from agent.sources.latest import LatestFrameCapture

RESULT_KEYS = ["source", "frame", "origin", "frame_time", "frame_age_ms", "engine", "engine_id", "precision"]


def test_batched_inference_splits_results_back_per_source(demo_dir, tmp_path, make_pipeline):
    cfg = load_config(str(demo_dir / "demo.yaml"), [f"paths.state_dir={tmp_path}", "model.input.batch=3"])
    pipeline, report = make_pipeline(Config.from_node(cfg))
    assert pipeline.model.spec.batch == 3
    loop_box: List[InferenceLoop] = []
    prepare = prepare_for(lambda: loop_box[0].pipeline if loop_box else None)
    captures = [
        LatestFrameCapture(
            lambda folder=folder: ImageFolderSource(str(demo_dir / "spot_labels" / folder), loop=True, fps=50),
            2.0,
            (0.05, 0.5),
            prepare=prepare,
            source_id=name,
        )
        for name, folder in (("faces", "face"), ("others", "non_face"))
    ]
    seen: List[Tuple[Frame, Dict[str, Any]]] = []
    calls: List[int] = []  # results per sink call

    def sink(batch: Sequence[Tuple[Frame, Dict[str, Any]]]) -> None:
        calls.append(len(batch))
        seen.extend(batch)

    loop = InferenceLoop(captures, pipeline, report, Handoff(), lambda: None, sinks=[sink], max_wait_s=0.05)
    loop_box.append(loop)
    for capture in captures:
        capture.start()
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        end = time.monotonic() + 20.0
        while len(seen) < 80 and time.monotonic() < end:
            time.sleep(0.05)
    finally:
        loop.stop_event.set()
        for capture in captures:
            capture.stop()
        thread.join(5.0)
    assert len(seen) >= 80 and not loop.error
    assert loop.batches < loop.inferences  # two frames per engine call, mostly
    assert max(calls) == 2 and len(calls) <= loop.batches  # the sink gets each batch's results in one call
    labels: Dict[str, Counter] = {"faces": Counter(), "others": Counter()}
    for frame, result in seen:
        assert list(result)[: len(RESULT_KEYS)] == RESULT_KEYS
        assert result["source"] == frame.source_id and result["origin"] == frame.origin
        assert f"/{'face' if frame.source_id == 'faces' else 'non_face'}/" in frame.origin  # no mix-up
        assert result["engine_id"] == report["cache_key"] and result["precision"] == "fp32"
        assert abs(result["frame_time"] - time.time()) < 60 and result["frame_age_ms"] >= 0
        labels[result["source"]][result["top"][0]["label"]] += 1
    assert labels["faces"].most_common(1)[0][0] == "face", labels
    assert labels["others"].most_common(1)[0][0] == "non_face", labels


def test_the_loop_stops_with_an_error_once_every_source_gave_up(demo_config, tmp_path, make_pipeline):
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video\n")
    pipeline, report = make_pipeline(demo_config)
    capture = LatestFrameCapture(
        lambda: VideoFileSource(str(fake), loop=True), 2.0, (0.02, 0.05), source_id="fake", max_failures=2
    )
    loop = InferenceLoop(capture, pipeline, report, Handoff(), lambda: None)
    capture.start()
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        assert loop.finished.wait(10.0)
    finally:
        capture.stop()
    assert loop.inferences == 0 and loop.error.startswith("every source stopped: fake: source error: ")
    assert "gave up after 2 attempts without a frame" in loop.error
    notice = events.source_failed(capture.stats())
    assert notice.event == Event.CAMERA_LOST and notice.severity == "error"
    assert notice.details["reason"] == "not decodable" and "source fake gave up" in notice.message
