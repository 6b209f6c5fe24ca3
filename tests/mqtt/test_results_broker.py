"""Results through the real link and a real mosquitto: per source topics, the schema, drops counted, never blocking."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from agent.config.load import load_config
from agent.config.sections import Config
from agent.daemon.results import ResultsPublisher
from agent.mqtt.link import Settings
from agent.sources.frames import Frame

from .brokers import free_port
from .conftest import wait_for
from .schemas import validator

IMAGE = np.zeros((360, 640, 3), dtype=np.uint8)


def _settings(**changes):
    return dataclasses.replace(Config.from_node(load_config(None, [])).results, **changes)


def _result(source: str, index: int, label: str):
    return {
        "source": source,
        "frame": index,
        "origin": f"{source}.avi",
        "frame_time": time.time(),
        "frame_age_ms": 4.0,
        "engine": "onnxruntime fp32",
        "engine_id": "0123abcd",
        "precision": "fp32",
        "detections": [{"label": label, "index": 0, "score": 0.9, "box": [64.0, 36.0, 320.0, 180.0]}],
    }


def _offer(results: ResultsPublisher, source: str, count: int, label: str = "face") -> None:
    for i in range(count):
        results.offer([(Frame(IMAGE, i, time.monotonic(), source), _result(source, i, label))])


@pytest.mark.mqtt
def test_results_arrive_per_source_and_match_the_schema(make_link, subscribe):
    sub = subscribe("edge-agent/dev1/results/#")
    link = make_link()
    link.start()
    wait_for(lambda: link.connected, 10, "connection")
    results = ResultsPublisher(link, _settings(policy_by_source={"yard": "on_change"}))
    results.start()
    _offer(results, "door", 5, "face")
    _offer(results, "yard", 5, "car")  # on_change: the same class every frame, so only the first goes out
    wait_for(lambda: results.published == 6, 10, "six results handed to the link")
    got = sub.collect(6, timeout=10)
    results.stop()
    assert sorted(topic for topic, _ in got) == ["edge-agent/dev1/results/door"] * 5 + ["edge-agent/dev1/results/yard"]
    for topic, payload in got:
        errors = [e.message for e in validator("result").iter_errors(payload)]
        assert not errors, (topic, errors)
        assert payload["source"] == topic.rsplit("/", 1)[1]
        assert payload["detections"][0]["label"] == ("face" if payload["source"] == "door" else "car")
        assert payload["detections"][0]["box"] == [0.1, 0.1, 0.5, 0.5]
    assert [p["frame"] for t, p in got if t.endswith("/door")] == [0, 1, 2, 3, 4]
    assert results.stats()["skipped_by_policy"] == 4


@pytest.mark.mqtt
def test_a_full_queue_drops_and_counts_instead_of_waiting(make_link, subscribe):
    sub = subscribe("edge-agent/dev1/results/#")
    link = make_link()
    link.start()
    wait_for(lambda: link.connected, 10, "connection")
    results = ResultsPublisher(link, _settings(queue=3))
    _offer(results, "door", 10)  # nothing drains the queue yet
    assert results.stats()["dropped_queue_full"] == 7 and results.stats()["dropped"] == 7
    results.start()
    wait_for(lambda: results.published == 3, 10, "the queued three")
    assert [p["frame"] for _, p in sub.collect(3, timeout=10)] == [0, 1, 2]
    results.stop()


def test_a_broker_that_is_down_never_blocks_the_caller_and_drops_are_counted(make_link):
    link = make_link(settings=Settings("127.0.0.1", free_port(), reconnect_min_s=0.1, reconnect_max_s=0.5))
    link.start()
    results = ResultsPublisher(link, _settings())
    results.start()
    started = time.monotonic()
    _offer(results, "door", 500)
    assert time.monotonic() - started < 5.0  # 500 offers while the link cannot connect: no waiting on it
    results.stop()
    stats = results.stats()
    assert stats["published"] == 0
    assert stats["dropped_offline"] + stats["dropped_queue_full"] == 500 == stats["dropped"]
    assert link.stats["results_offline"] == stats["dropped_offline"]
    assert link.outbox.count == 0  # transient: nothing stored


def test_stored_results_wait_in_the_outbox_while_the_broker_is_down(make_link):
    link = make_link(settings=Settings("127.0.0.1", free_port(), reconnect_min_s=0.1, reconnect_max_s=0.5))
    link.start()
    results = ResultsPublisher(link, _settings(store=True, qos=1))
    results.start()
    _offer(results, "door", 4)
    results.stop()
    assert results.published == 4 and link.outbox.count == 4


@pytest.mark.mqtt
def test_one_batch_of_results_goes_out_in_order_with_rising_seqs(make_link, subscribe):
    sub = subscribe("edge-agent/dev1/results/#")
    link = make_link()
    link.start()
    wait_for(lambda: link.connected, 10, "connection")
    results = ResultsPublisher(link, _settings())
    results.start()
    sources = ["cam0", "cam1", "cam2", "cam3"]
    results.offer([(Frame(IMAGE, 7, time.monotonic(), s), _result(s, 7, "face")) for s in sources])
    got = sub.collect(4, timeout=10)
    results.stop()
    assert [p["source"] for _, p in got] == sources and [t.rsplit("/", 1)[1] for t, _ in got] == sources
    seqs = [p["seq"] for _, p in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    assert all(validator("result").is_valid(p) for _, p in got)


@pytest.mark.mqtt
def test_acks_are_listened_to_only_while_qos1_messages_are_in_flight(make_link, subscribe):
    sub = subscribe("edge-agent/dev1/#")
    link = make_link()
    link.start()
    wait_for(lambda: link.connected and link._client.on_publish is None, 10, "the online status acknowledged")
    assert link.publish_results([("door", {"frame": i}) for i in range(3)]) is not None
    assert len(sub.collect(3, timeout=10, where=lambda t, p: "/results/" in t)) == 3
    assert link._client.on_publish is None  # QoS 0 results: paho calls no callback per message written
    link.publish_report("accuracy", {"status": "ok"})
    wait_for(lambda: link.outbox.count == 0, 10, "the report acknowledged and out of the outbox")
    wait_for(lambda: link._client.on_publish is None, 10, "the callback removed once nothing is in flight")
    assert link.stats["acknowledged"] == 1
