"""Results publishing policies (pure logic) and the result payload against docs/schemas/result.json."""

from __future__ import annotations

import dataclasses
import time
from typing import List

import pytest

from agent.config.load import load_config
from agent.config.sections import Config
from agent.daemon.results import BoundedWorker, Policy, class_signature, policy_for, result_body
from agent.mqtt.messages import Topics, envelope
from agent.mqtt.publisher import LogPublisher

from .schemas import validator

DETECTION = {
    "source": "door",
    "frame": 7,
    "origin": "rtsp://cam/door",
    "frame_time": 1764719400.25,
    "frame_age_ms": 12.5,
    "engine": "onnxruntime fp32",
    "engine_id": "ab" * 8,
    "precision": "fp32",
    "detections": [
        {"label": "face", "index": 0, "score": 0.91, "box": [64.0, 48.0, 320.0, 240.0], "landmarks": [80.0, 60.0]},
        {"label": "face", "index": 0, "score": 0.55, "box": [-3.0, 0.0, 700.0, 500.0]},
    ],
}
CLASSIFICATION = {
    "source": "gate",
    "frame": 3,
    "origin": "img_3.jpg",
    "frame_time": 1764719401.0,
    "frame_age_ms": 3.0,
    "engine": "tensorrt int8",
    "engine_id": None,
    "precision": "int8",
    "predicted": 1,
    "top": [{"label": "non_face", "index": 1, "score": 0.8}, {"label": "face", "index": 0, "score": 0.2}],
}


def _settings(**changes):
    return dataclasses.replace(Config.from_node(load_config(None, [])).results, **changes)


def test_every_frame_publishes_every_result():
    policy = Policy("every_frame", 1.0)
    assert all(policy.due((), t * 0.001) for t in range(50))


def test_on_change_publishes_when_the_class_set_or_a_count_changes():
    policy = Policy("on_change", 1.0)
    one_face = class_signature({"detections": [{"label": "face"}]})
    two_faces = class_signature({"detections": [{"label": "face"}, {"label": "face"}]})
    face_and_car = class_signature({"detections": [{"label": "car"}, {"label": "face"}]})
    seen = [policy.due(s, 0.0) for s in (one_face, one_face, two_faces, two_faces, face_and_car, (), ())]
    assert seen == [True, False, True, False, True, True, False]


def test_on_change_for_classification_follows_the_predicted_class():
    policy = Policy("on_change", 1.0)
    face = class_signature({"top": [{"label": "face", "index": 0, "score": 0.9}]})
    other = class_signature(CLASSIFICATION)
    assert [policy.due(s, 0.0) for s in (face, face, other, other, face)] == [True, False, True, False, True]


def test_max_rate_holds_a_steady_rate_without_bursts():
    policy = Policy("max_rate", 4.0)  # one every 0.25 s
    times = [i * 0.01 for i in range(300)]  # 100 results a second for 3 s
    published = [t for t in times if policy.due((), t)]
    assert len(published) == 12
    gaps = [b - a for a, b in zip(published, published[1:])]
    assert min(gaps) >= 0.25 - 1e-9 and max(gaps) < 0.26


def test_max_rate_after_a_pause_does_not_catch_up():
    policy = Policy("max_rate", 10.0)
    assert policy.due((), 0.0)
    assert policy.due((), 5.0)  # long after: at once, then the rate again
    assert not policy.due((), 5.05)
    assert policy.due((), 5.1)


def test_per_source_overrides_and_bad_policies():
    settings = _settings(policy_by_source={"door": "max_rate"}, max_per_s_by_source={"door": 2.0})
    assert policy_for(settings, "door").name == "max_rate" and policy_for(settings, "door").interval == 0.5
    assert policy_for(settings, "gate").name == "every_frame"
    with pytest.raises(ValueError, match="every_frame, on_change, max_rate"):
        Policy("sometimes", 1.0)


def test_the_config_refuses_an_unknown_per_source_policy():
    from agent.util.errors import ConfigError

    with pytest.raises(ConfigError, match=r"results\.policy_by_source\.door"):
        load_config(None, ["results.policy_by_source={door: sometimes}"])


def test_detection_payload_is_normalised_xyxy_of_the_original_frame_and_valid():
    body = result_body((480, 640, 3), DETECTION)
    assert body["width"] == 640 and body["height"] == 480 and body["task"] == "detection"
    first, second = body["detections"]
    assert first["box"] == [0.1, 0.1, 0.5, 0.5]
    assert first["landmarks"] == [0.125, 0.125]
    assert second["box"] == [0.0, 0.0, 1.0, 1.0]  # clipped to the frame
    assert body["frame_time"] == "2025-12-02T23:50:00.250Z"
    payload = envelope("result", "dev1", 5, body)
    errors = [e.message for e in validator("result").iter_errors(payload)]
    assert not errors, errors


def test_classification_payload_carries_top_k_with_scores_and_is_valid():
    body = result_body((224, 224), CLASSIFICATION)
    assert body["top"] == CLASSIFICATION["top"] and body["task"] == "classification"
    payload = envelope("result", "dev1", 6, body)
    assert validator("result").is_valid(payload)


@pytest.mark.parametrize(
    "broken",
    [
        {"detections": [{"label": "face", "index": 0, "score": 0.9, "box": [10, 10, 20, 20]}]},  # pixels
        {"source": "a/b"},
        {"top": None},
        {"frame_time": 1764719401.0},
    ],
)
def test_the_result_schema_refuses_broken_payloads(broken):
    good = envelope(
        "result", "dev1", 6, result_body((480, 640, 3), DETECTION if "detections" in broken else CLASSIFICATION)
    )
    assert validator("result").is_valid(good)
    assert not validator("result").is_valid(dict(good, **broken))


def test_topics_per_source_and_bad_ids():
    topics = Topics("edge-agent", "dev1")
    assert topics.results("door") == "edge-agent/dev1/results/door"
    assert topics.snapshot("door") == "edge-agent/dev1/snapshot/door"
    for bad in ("", "a/b", "cam+", "#"):
        with pytest.raises(ValueError, match="topic level"):
            topics.results(bad)


def test_the_worker_takes_what_fits_counts_the_rest_and_hands_over_all_queued_at_once():
    handled: List[List[int]] = []
    worker: BoundedWorker[int] = BoundedWorker("test", 5, handled.append)
    assert worker.offer([1, 2, 3]) == 3
    assert worker.offer([4, 5, 6, 7]) == 2  # the bound: 6 and 7 are dropped, inference never waits
    assert worker.dropped == 2 and worker.queued == 5
    worker.start()
    worker.stop()
    assert handled == [[1, 2, 3, 4, 5]]  # one hand-over for everything queued, in order


def test_a_failing_hand_over_counts_its_items_and_the_worker_goes_on():
    handled: List[List[int]] = []

    def handle(items: List[int]) -> None:
        if items == [0]:
            raise ValueError("broken")
        handled.append(items)

    worker: BoundedWorker[int] = BoundedWorker("test", 10, handle)
    worker.start()
    worker.offer([0])
    deadline = time.monotonic() + 5
    while worker.failed == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.offer([1, 2])
    worker.stop()
    assert worker.failed == 1 and handled == [[1, 2]]


def test_the_log_publisher_numbers_a_batch_of_results_in_order():
    publisher = LogPublisher(dict)
    assert publisher.publish_results([("door", {}), ("yard", {})]) == [1, 2]
    assert publisher.publish_results([]) == []
