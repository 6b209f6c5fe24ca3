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


def run_until_finished(loop: InferenceLoop, capture: LatestFrameCapture) -> None:
    """Run ``loop`` over ``capture`` until the loop ends by itself (within 10 s), then stop both."""
    capture.start()
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        assert loop.finished.wait(10.0)
    finally:
        capture.stop()
        thread.join(5.0)


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
    run_until_finished(loop, capture)
    assert loop.inferences == 0 and loop.error.startswith("every source stopped: fake: source error: ")
    assert "gave up after 2 attempts without a frame" in loop.error
    notice = events.source_failed(capture.stats())
    assert notice.event == Event.CAMERA_LOST and notice.severity == "error"
    assert notice.details["reason"] == "not decodable" and "source fake gave up" in notice.message


def test_a_swap_to_another_batch_infers_every_frame_once(demo_dir, tmp_path, make_pipeline):
    """Four unpaced files, batch 4, then an engine at batch 3 swapped in while the prefetcher has a
    batch of 4 formed for the old one: no frame lost, none inferred twice, batches of 3 after."""
    settings = [f"paths.state_dir={tmp_path}"]
    old, old_report = make_pipeline(
        Config.from_node(load_config(str(demo_dir / "demo.yaml"), settings + ["model.input.batch=4"]))
    )
    new, new_report = make_pipeline(
        Config.from_node(load_config(str(demo_dir / "demo.yaml"), settings + ["model.input.batch=3"]))
    )
    captures = [
        LatestFrameCapture(
            lambda: VideoFileSource(str(demo_dir / "stream.avi"), loop=False),
            2.0,
            (0.05, 0.5),
            finite=True,
            source_id=f"f{i}",
            pull=True,
        )
        for i in range(4)
    ]
    handoff = Handoff()
    seen: List[Tuple[str, int, str]] = []
    calls: List[Tuple[str, int]] = []

    def sink(batch: Sequence[Tuple[Frame, Dict[str, Any]]]) -> None:
        calls.append((batch[0][1]["engine_id"], len(batch)))
        seen.extend((r["source"], r["frame"], r["engine_id"]) for _, r in batch)

    loop = InferenceLoop(captures, old, old_report, handoff, lambda: None, sinks=[sink], max_wait_s=0.5)
    for capture in captures:
        capture.start()
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    assert loop.first_inference.wait(10.0)
    handoff.offer((new, new_report))
    thread.join(30.0)
    for capture in captures:
        capture.stop()
    total = captures[0].stats()["frames_read"]
    assert not thread.is_alive() and not loop.error and loop.stop_reason == "the source ended"
    assert handoff.swapped.is_set() and loop.pipeline is new
    assert sorted((s, k) for s, k, _ in seen) == sorted((f"f{i}", k) for i in range(4) for k in range(total))
    engines = [engine for engine, _ in calls]
    switch = engines.index(new_report["cache_key"])
    assert set(engines[:switch]) == {old_report["cache_key"]} and set(engines[switch:]) == {new_report["cache_key"]}
    assert {size for _, size in calls[switch:]} <= {1, 2, 3} and max(size for _, size in calls[:switch]) == 4


def test_a_failing_result_sink_stops_the_loop_with_its_error(demo_config, demo_dir, make_pipeline):
    pipeline, report = make_pipeline(demo_config)
    capture = LatestFrameCapture(lambda: VideoFileSource(str(demo_dir / "stream.avi"), loop=True), 2.0, (0.05, 0.5))

    def broken(batch: Sequence[Tuple[Frame, Dict[str, Any]]]) -> None:
        raise OSError("No space left on device")

    loop = InferenceLoop(capture, pipeline, report, Handoff(), lambda: None, sinks=[broken])
    run_until_finished(loop, capture)
    assert loop.error == "finishing results failed: OSError: No space left on device"
    assert loop.inferences <= 4  # stopped within the finisher's backlog, not served on without results


def test_a_frame_no_batch_can_be_formed_from_stops_the_loop_with_its_error(demo_config, make_pipeline):
    from tests.daemon.test_prefetch import BrokenImages

    pipeline, report = make_pipeline(demo_config)
    capture = LatestFrameCapture(BrokenImages, 2.0, (0.05, 0.5), source_id="broken")
    loop = InferenceLoop(capture, pipeline, report, Handoff(), lambda: None)
    run_until_finished(loop, capture)
    assert loop.inferences == 0
    assert loop.error.startswith("forming a batch failed: ValueError: frame with shape (0, 0, 3) is not an image")
