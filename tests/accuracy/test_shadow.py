"""Shadow evaluation against the real FP32 ONet reference, and the live-frame ring with late labels."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any, List

import numpy as np
import pytest

from agent.accuracy import check as accuracy
from agent.accuracy.drift import Thresholds, compare
from agent.accuracy.livelabels import LiveRing, live_ring_from_config
from agent.accuracy.shadow import SideWorker, TokenBucket, agreement_pairs, rolling_recall, shadow_from_config
from agent.sources.frames import Frame
from agent.util.errors import InputError


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lfw_frames(lfw: Any, count: int = 20) -> List[Frame]:
    images, _ = lfw
    picks = list(range(count // 2)) + list(range(100, 100 + count // 2))  # faces, then non-faces
    return [Frame(np.repeat(images[i][:, :, None], 3, axis=2), n, 0.0, f"lfw:{i}") for n, i in enumerate(picks)]


def test_token_bucket_limits_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, clock=clock)
    assert [bucket.take() for _ in range(3)] == [True, False, False]
    clock.now += 0.5
    assert bucket.take() and not bucket.take()
    assert not TokenBucket(0.0, clock=clock).take()


def test_side_worker_drops_while_busy_and_survives_failures() -> None:
    seen: List[int] = []

    def handle(item: int) -> None:
        if item < 0:
            raise ValueError("bad item")
        seen.append(item)

    worker = SideWorker("test", handle)
    assert worker.offer(1) and not worker.offer(2)
    assert worker.run_pending() and not worker.run_pending()
    worker.offer(-1)
    worker.run_pending()
    assert seen == [1] and worker.counts == {"handled": 1, "dropped_busy": 1, "failed": 1}
    assert worker.last_error == "ValueError: bad item"


def test_agreement_pairs_for_both_tasks() -> None:
    assert agreement_pairs("classification", {"predicted": 1}, {"predicted": 0}) == [(1, 0)]
    assert agreement_pairs("classification", {"predicted": None}, {"predicted": 0}) == []
    ref = {"detections": [{"box": [0, 0, 10, 10], "index": 0}, {"box": [20, 20, 30, 30], "index": 1}]}
    eng = {"detections": [{"box": [0, 0, 10, 9], "index": 0}]}
    assert agreement_pairs("detection", ref, eng) == [(0, 0), (1, -1)]


@pytest.fixture
def reference(demo_config: Any) -> accuracy.EngineRun:
    return accuracy.open_reference(demo_config.model, demo_config.backend, threads=1)


def test_shadow_agreement_per_class_against_the_real_reference(
    demo_config: Any, reference: accuracy.EngineRun, lfw: Any
) -> None:
    frames = lfw_frames(lfw)
    engine_results = reference.pipeline.infer_frames(frames)
    for result in engine_results[:5]:  # an engine that misses half of the faces the reference sees
        result["predicted"] = 0
    shadow = shadow_from_config(demo_config.accuracy, demo_config.model, reference)
    shadow.fraction, shadow.bucket = 1.0, TokenBucket(1e9)
    for frame, result in zip(frames, engine_results):
        assert shadow.offer(frame, result)
        assert shadow.worker.run_pending()
    snap = shadow.snapshot()
    assert snap["frames"] == 20 and snap["handled"] == 20 and snap["failed"] == 0
    assert snap["per_class"]["face"]["agreement"] == 0.5 and snap["per_class"]["face"]["n"] == 10
    assert snap["per_class"]["non_face"]["agreement"] == 1.0
    assert snap["agreement"] == 0.75


def test_shadow_sampling_and_rate_limit(reference: accuracy.EngineRun, lfw: Any) -> None:
    from agent.accuracy.shadow import ShadowEvaluator

    clock = FakeClock()
    shadow = ShadowEvaluator(
        reference.pipeline, reference.labels, "classification", 0.5, 1.0, 10, rng=random.Random(7), clock=clock
    )
    frames = lfw_frames(lfw)
    sent = 0
    for frame in frames:
        sent += shadow.offer(frame, {"predicted": 1})
        shadow.worker.run_pending()
    counts = shadow.snapshot()
    assert counts["offered"] == 20 and 3 <= counts["sampled"] <= 17
    assert sent == 1 and counts["rate_limited"] == counts["sampled"] - 1  # the clock stood still: one token
    clock.now += 1.0
    assert any(shadow.offer(f, {"predicted": 1}) for f in frames)  # a second later, a new token


def test_shadow_thread_runs_beside_the_caller(demo_config: Any, reference: accuracy.EngineRun, lfw: Any) -> None:
    shadow = shadow_from_config(demo_config.accuracy, demo_config.model, reference)
    shadow.fraction = 1.0
    shadow.bucket = TokenBucket(1e9)
    shadow.start()
    try:
        frames = lfw_frames(lfw)
        for frame in frames:
            shadow.offer(frame, {"predicted": 1 if frame.index < 10 else 0})
            time.sleep(0.005)
        deadline = time.monotonic() + 10
        while shadow.worker.pending is not None and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        shadow.stop()
    snap = shadow.snapshot()
    assert snap["handled"] + snap["dropped_busy"] == 20 and snap["handled"] >= 1
    assert snap["agreement"] == 1.0


def ring_frames(n: int) -> List[Frame]:
    return [Frame(np.full((8, 8, 3), i, dtype=np.uint8), i, 0.0, "cam") for i in range(n)]


def test_live_ring_keeps_evicts_and_takes_late_labels(tmp_path: Path) -> None:
    ring = LiveRing(str(tmp_path / "live"), ["non_face", "face"], capacity=3, fraction=1.0)
    ids = [ring.keep(frame, 1) for frame in ring_frames(4)]
    assert ids == ["f00000001", "f00000002", "f00000003", "f00000004"]
    assert sorted(p.name for p in (tmp_path / "live" / "frames").iterdir()) == [
        "f00000002.png",
        "f00000003.png",
        "f00000004.png",
    ]
    ring.label("f00000002", "face")
    drops = tmp_path / "live" / "labels"
    drops.mkdir()
    (drops / "a.csv").write_text("f00000003,non_face\nf00000001,face\nf00000004,cat\nbroken\n", encoding="utf-8")
    (drops / "b.jsonl").write_text('{"id": "f00000004", "label": "face"}\n{"id": 4}\n', encoding="utf-8")
    result = ring.ingest_drops()
    assert result["applied"] == 2
    assert result["errors"] == [
        f"{drops / 'a.csv'}:2: label: no frame 'f00000001' in the live ring (it holds 3, oldest evicted first)",
        f"{drops / 'a.csv'}:3: label: unknown class 'cat' (classes: non_face, face)",
        f"{drops / 'a.csv'}:4: expected 2 columns (id,label), got 1",
        f'{drops / "b.jsonl"}:2: expected {{"id": "...", "label": "..."}}',
    ]
    assert sorted(p.name for p in (drops / "done").iterdir()) == ["a.csv", "b.jsonl"]
    snap = ring.snapshot()
    assert snap["labeled"] == 3 and snap["awaiting_label"] == 0
    assert snap["per_class"]["face"]["recall"] == 1.0 and snap["per_class"]["non_face"]["recall"] == 0.0
    # a restart keeps the ring and its labels
    again = LiveRing(str(tmp_path / "live"), ["non_face", "face"], capacity=3, fraction=1.0)
    assert (
        again.outcomes()
        == ring.outcomes()
        == {"f00000002": ("face", True), "f00000003": ("non_face", False), "f00000004": ("face", True)}
    )
    assert again.keep(ring_frames(1)[0], 0) == "f00000005"


def test_live_labels_feed_drift_against_the_baseline(tmp_path: Path) -> None:
    ring = LiveRing(str(tmp_path / "live"), ["non_face", "face"], capacity=100, fraction=1.0)
    for i, frame in enumerate(ring_frames(60)):
        frame_id = ring.keep(frame, 1 if i < 10 else 0)  # the engine now misses most faces
        ring.label(frame_id, "face" if i < 40 else "non_face")
    baseline = {f"s{i}": ("face" if i < 100 else "non_face", True) for i in range(200)}
    result = compare(baseline, ring.outcomes(), ["non_face", "face"], Thresholds())
    assert result["per_class"]["face"]["test"] == "fisher_exact"
    assert result["per_class"]["face"]["recall"] == 0.25 and result["status"] == "alert"
    assert rolling_recall([(1, 1), (1, 0)], ["non_face", "face"])["face"]["recall"] == 0.5


def test_live_ring_sampling_goes_through_its_thread(demo_config: Any) -> None:
    accuracy_cfg, state_dir = demo_config.accuracy, demo_config.paths.state_dir
    ring = live_ring_from_config(accuracy_cfg, demo_config.model.task, state_dir, ["non_face", "face"])
    ring.fraction = 1.0
    assert not ring.offer(ring_frames(1)[0], {"predicted": None})
    assert ring.offer(ring_frames(1)[0], {"predicted": 1})
    assert ring.worker.run_pending() and ring.snapshot()["kept"] == 1
    with pytest.raises(InputError, match="no frame 'nope'"):
        ring.label("nope", "face")
    # a frame-level label says nothing about boxes
    assert live_ring_from_config(accuracy_cfg, "detection", state_dir, ["non_face", "face"]) is None


def test_a_damaged_ring_index_starts_empty(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "live").mkdir()
    (tmp_path / "live" / "index.json").write_text("{broken", encoding="utf-8")
    ring = LiveRing(str(tmp_path / "live"), ["a", "b"], capacity=2, fraction=1.0)
    assert ring.snapshot()["kept"] == 0 and "unusable" in caplog.text
