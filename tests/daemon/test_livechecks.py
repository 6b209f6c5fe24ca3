"""Live checks in the daemon (agent.daemon.livechecks) with the real ONet engines and the sample stream:
shadow agreement against the FP32 reference on ONNX Runtime, drift on disagreement, the skip
when the engine is the reference, the live ring fed by frames, capture_samples, label and drops."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from agent.accuracy.metrics import wilson_interval
from agent.config.sections import Config
from agent.daemon.handlers import progress_listener
from agent.daemon.livechecks import (
    REFERENCE_SKIP,
    LiveChecks,
    disagreeing_classes,
    open_shadow_reference,
    serves_reference,
)
from agent.model.pipeline import Pipeline
from agent.sources.files import VideoFileSource
from agent.sources.frames import Frame


def stream_frames(demo_dir: Path, count: int) -> List[Frame]:
    """``count`` frames spread evenly over the sample stream (so both classes are in them)."""
    source = VideoFileSource(str(demo_dir / "stream.avi"), loop=False)
    frames = []
    while True:
        frame = source.read()
        if frame is None:
            break
        frames.append(frame)
    source.close()
    step = max(1, len(frames) // count)
    return frames[::step][:count]


def with_accuracy(cfg: Config, **values: Any) -> Config:
    return dataclasses.replace(cfg, accuracy=dataclasses.replace(cfg.accuracy, **values))


def wait_for(condition: Any, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


@pytest.fixture
def int8(demo_config, make_pipeline) -> Tuple[Pipeline, Dict[str, Any]]:
    return make_pipeline(demo_config, "int8")


def reference_loader(cfg: Config, loads: List[int]):
    def load() -> Pipeline:
        loads.append(1)
        return open_shadow_reference(cfg)

    return load


def feed_shadow(live: LiveChecks, frames: List[Frame], answer: Any) -> None:
    """Offer each frame with the engine's answer and wait for the shadow thread to evaluate it."""
    assert live.shadow is not None
    for frame in frames:
        handled = live.shadow.worker.counts["handled"] + live.shadow.worker.counts["failed"]
        live.observe(frame, answer(frame))
        wait_for(
            lambda handled=handled: live.shadow.worker.counts["handled"] + live.shadow.worker.counts["failed"] > handled
        )


def test_disagreeing_classes_need_significance():
    def entry(hits: int, n: int) -> Dict[str, Any]:
        return {"agreement": hits / n if n else None, "n": n, "ci95": list(wilson_interval(hits, n))}

    # a: 3 of 4 is low but could be chance; b: 10 of 50 is not; c agrees; d has no samples
    per_class = {"a": entry(3, 4), "b": entry(10, 50), "c": entry(50, 50), "d": entry(0, 0)}
    assert list(disagreeing_classes(per_class, 0.9)) == ["b"]


def test_the_fp32_reference_engine_is_not_shadowed(demo_config, make_pipeline):
    pipeline, report = make_pipeline(demo_config, "fp32")
    assert serves_reference(report)
    live = LiveChecks(demo_config, pipeline.model.labels, lambda: pytest.fail("the reference must not load"))
    live.engine_changed(report)
    snap = live.snapshot()
    assert snap["shadow"] == {
        "enabled": False,
        "engine": report["cache_key"],
        "min_agreement": 0.9,
        "skipped": REFERENCE_SKIP,
    }
    live.stop()


def test_shadow_agreement_on_live_frames_and_drift_when_the_engine_disagrees(demo_config, demo_dir, int8):
    cfg = with_accuracy(demo_config, shadow_fraction=1.0, shadow_max_per_s=1000.0, shadow_window=40)
    pipeline, report = int8
    assert not serves_reference(report)
    loads: List[int] = []
    live = LiveChecks(cfg, pipeline.model.labels, reference_loader(cfg, loads))
    live.engine_changed(report)
    frames = stream_frames(demo_dir, 40)
    try:
        feed_shadow(live, frames, lambda frame: pipeline.infer_frames([frame])[0])
        snap = live.snapshot()["shadow"]
        assert snap["enabled"] and snap["frames"] == 40 and snap["failed"] == 0 and loads == [1]
        assert snap["per_class"]["face"]["n"] + snap["per_class"]["non_face"]["n"] == 40
        assert snap["agreement"] >= 0.95  # the gated INT8 engine agrees with FP32
        assert live.new_disagreements() == {}
        # an engine that answers non_face for everything: face agreement collapses, non_face stays
        nonface = pipeline.model.labels.index("non_face")
        feed_shadow(live, frames, lambda frame: {"predicted": nonface})
        low = live.new_disagreements()
        assert list(low) == ["face"] and low["face"]["agreement"] == 0.0 and low["face"]["n"] >= 10
        assert live.new_disagreements() == {}  # raised once, not on every telemetry tick
        assert live.snapshot()["shadow"]["per_class"]["non_face"]["agreement"] == 1.0
        live.engine_changed(report)  # a new engine starts a fresh window
        assert live.snapshot()["shadow"]["frames"] == 0
    finally:
        live.stop()


def test_the_shadow_rate_limit_keeps_most_frames_away_from_the_reference(demo_config, demo_dir, int8, make_pipeline):
    cfg = with_accuracy(demo_config, shadow_fraction=1.0, shadow_max_per_s=0.5, shadow_window=40)
    pipeline, report = int8
    live = LiveChecks(cfg, pipeline.model.labels, reference_loader(cfg, []))
    live.engine_changed(report)
    try:
        started = time.monotonic()
        for frame in stream_frames(demo_dir, 30):
            live.observe(frame, {"predicted": 0})
        assert time.monotonic() - started < 1.0  # observe never waits for the reference
        shadow = live.shadow
        assert shadow is not None and shadow.counts["offered"] == 30
        assert shadow.counts["rate_limited"] >= 28  # a burst of one, then 0.5 per second
    finally:
        live.stop()


def test_capture_samples_label_and_dropped_labels(demo_config, demo_dir, make_pipeline):
    cfg = with_accuracy(demo_config, live_sample_fraction=0.0)
    pipeline, report = make_pipeline(cfg, "fp32")
    live = LiveChecks(cfg, pipeline.model.labels, lambda: None)
    live.engine_changed(report)
    frames = stream_frames(demo_dir, 12)
    truth = (demo_dir / "truth.txt").read_text().split()
    answers: Dict[str, Any] = {}
    waiter = threading.Thread(target=lambda: answers.update(live.capture_samples(5, 20.0)))
    waiter.start()
    wait_for(lambda: live.samples.wanted == 5)
    for frame in frames:
        live.observe(frame, pipeline.infer_frames([frame])[0])
    waiter.join(20.0)
    try:
        ids = answers["ids"]
        assert answers["captured"] == 5 and len(set(ids)) == 5
        assert all((Path(cfg.paths.state_dir) / "live" / "frames" / f"{i}.png").is_file() for i in ids)
        first = {i: truth[frames[n].index] for n, i in enumerate(ids[:3])}
        answer = live.label({**first, "f99999999": "face", ids[3]: "cat"})
        assert answer["accepted"] == ids[:3]
        assert set(answer["refused"]) == {"f99999999", ids[3]}
        assert (
            "no frame 'f99999999'" in answer["refused"]["f99999999"]
            and "unknown class 'cat'" in answer["refused"][ids[3]]
        )
        recall = answer["live_recall"]
        assert sum(entry["n"] for entry in recall.values()) == 3
        drops = Path(cfg.paths.state_dir) / "live" / "labels"
        drops.mkdir(parents=True, exist_ok=True)
        (drops / "batch.csv").write_text(f"{ids[4]},{truth[frames[4].index]}\nnot-an-id,face\n")
        outcome = live.ingest_drops()
        assert outcome is not None and outcome["applied"] == 1
        assert len(outcome["errors"]) == 1 and "batch.csv:2" in outcome["errors"][0]
        assert (drops / "done" / "batch.csv").is_file()
        ring = live.snapshot()["live_labels"]
        assert ring["labeled"] == 4 and ring["kept"] == 5 and ring["awaiting_label"] == 1
        assert all(
            entry["recall"] in (None, 1.0) for entry in ring["per_class"].values()
        )  # FP32 is right on the stream
    finally:
        live.stop()


def test_capture_samples_answers_what_arrived_before_the_timeout(demo_config, make_pipeline):
    pipeline, report = make_pipeline(demo_config, "fp32")
    live = LiveChecks(demo_config, pipeline.model.labels, lambda: None)
    try:
        answer = live.capture_samples(3, 0.2)
        assert answer["captured"] == 0 and answer["ids"] == [] and "within 0.2 s" in answer["note"]
        assert live.samples.wanted == 0  # the next capture can start
    finally:
        live.stop()


def test_progress_listener_forwards_the_first_and_every_tenth_update():
    sent: List[Tuple[Any, str]] = []
    listen = progress_listener(lambda fraction, message: sent.append((fraction, message)))
    for done in range(1, 101):
        listen("calibration frames", done, 100, "")
    assert (
        len(sent) == 11
        and sent[0] == (0.01, "calibration frames: 1/100")
        and sent[-1] == (1.0, "calibration frames: 100/100")
    )


def test_the_daemon_publishes_shadow_drift_once_and_refused_label_drops(demo_cfg, demo_config, demo_dir, int8, caplog):
    from agent.daemon.supervisor import Daemon
    from agent.mqtt.publisher import LogPublisher

    cfg = with_accuracy(demo_config, shadow_fraction=1.0, shadow_max_per_s=1000.0, shadow_window=40)
    pipeline, report = int8
    daemon = Daemon(demo_cfg, None, environ={})
    daemon.publisher = LogPublisher(lambda: {})
    daemon.live = LiveChecks(cfg, pipeline.model.labels, lambda: open_shadow_reference(cfg))
    daemon.live.engine_changed(report)
    nonface = pipeline.model.labels.index("non_face")
    try:
        feed_shadow(daemon.live, stream_frames(demo_dir, 40), lambda frame: {"predicted": nonface})
        caplog.set_level("INFO", logger="agent.mqtt.publisher")
        daemon._report_live_drift({})
        daemon._report_live_drift({})
        drift = [
            json.loads(r.getMessage().split(": ", 1)[1])
            for r in caplog.records
            if r.getMessage().startswith("event drift")
        ]
        assert len(drift) == 1 and drift[0]["severity"] == "warning"
        assert drift[0]["details"]["source"] == "shadow" and list(drift[0]["details"]["per_class"]) == ["face"]
        drops = Path(cfg.paths.state_dir) / "live" / "labels"
        drops.mkdir(parents=True, exist_ok=True)
        (drops / "bad.jsonl").write_text('{"id": "f00000001"}\n')
        outcome = daemon.ingest_label_drops()
        assert outcome is not None and outcome["applied"] == 0 and "bad.jsonl:1" in outcome["errors"][0]
        assert any(r.getMessage().startswith("event labels_rejected") for r in caplog.records)
    finally:
        daemon.live.stop()


def test_labeled_live_frames_are_compared_with_the_baseline(demo_config, demo_dir, make_pipeline):
    from agent.daemon import jobs

    pipeline, report = make_pipeline(demo_config, "fp32")
    jobs.baseline_of_serving(
        demo_config, pipeline, report, lambda: None, "promotion"
    )  # FP32 on the spot set: every answer right
    live = LiveChecks(demo_config, pipeline.model.labels, lambda: None)
    truth = (demo_dir / "truth.txt").read_text().split()
    face, nonface = pipeline.model.labels.index("face"), pipeline.model.labels.index("non_face")
    try:
        assert live.snapshot()["live_labels"]["drift"] is None  # nothing labeled yet
        frames = [f for f in stream_frames(demo_dir, 60) if truth[f.index] == "face"][:15]
        for frame in frames[:3]:
            live.label({live.ring.keep(frame, face): "face"})
        ok = live.snapshot()["live_labels"]["drift"]
        assert ok["status"] == "ok" and ok["per_class"]["face"]["support"] == 3
        assert live.new_label_drift(ok) is None
        for frame in frames[3:]:  # an engine that now calls faces non_face
            live.label({live.ring.keep(frame, nonface): "face"})
        drifted = live.snapshot()["live_labels"]["drift"]
        assert drifted["status"] == "alert" and drifted["per_class"]["face"]["recall"] == pytest.approx(3 / 15)
        assert drifted["per_class"]["face"]["test"] and drifted["per_class"]["face"]["p_value"] < 0.05
        assert live.new_label_drift(drifted) is drifted and live.new_label_drift(drifted) is None  # once per change
    finally:
        live.stop()
