"""The device link against a real mosquitto: reports, status, outages, callbacks, commands."""

from __future__ import annotations

import json
import threading
import time

import pytest

from agent.mqtt.commands import make_request
from agent.mqtt.outbox import Bounds

from .brokers import mosquitto_pub
from .conftest import KEY, unique_seqs, wait_for

pytestmark = pytest.mark.mqtt


def test_reports_are_published_in_order_and_leave_the_outbox(make_link, subscribe):
    sub = subscribe("edge-agent/dev1/report/#")
    link = make_link()
    link.start()
    seqs = [link.publish_report("benchmark", {"n": i, "accuracy": None}) for i in range(20)]
    got = sub.collect(20, timeout=10)
    assert [p["n"] for _, p in got] == list(range(20))
    assert [p["seq"] for _, p in got] == seqs == sorted(seqs)
    assert {t for t, _ in got} == {"edge-agent/dev1/report/benchmark"}
    assert link.wait_drained(5)
    assert link.outbox.count == 0


def test_status_is_retained_online_then_stopped(make_link, subscribe, broker):
    link = make_link()
    link.start()
    wait_for(lambda: link.connected, 10, "connection")
    online = subscribe("edge-agent/dev1/status").collect(1, timeout=5)  # a late subscriber sees the retained one
    assert online and online[0][1]["state"] == "online"
    assert online[0][1]["version"] and "uptime_s" in online[0][1] and "engine" in online[0][1]
    link.stop(timeout=5)
    stopped = subscribe("edge-agent/dev1/status").collect(1, timeout=5)
    assert stopped and stopped[0][1]["state"] == "stopped"


def test_outage_every_report_arrives_once_after_dedup_and_in_order(make_link, subscribe, broker):
    """Stop the broker while reports are produced, start it again: nothing lost, order kept."""
    sub = subscribe("edge-agent/dev1/report/#", extra=["-c", "-i", "outage-subscriber"])
    link = make_link()
    link.start()
    wait_for(lambda: link.connected, 10, "connection")
    produced = []

    def produce(start: int, stop: int) -> None:
        for i in range(start, stop):
            produced.append(link.publish_report("build", {"n": i}))
            time.sleep(0.002)

    produce(0, 100)
    outage = threading.Thread(target=produce, args=(100, 300))
    outage.start()
    broker.stop()
    wait_for(lambda: not link.connected, 10, "the link to notice the outage")
    time.sleep(0.3)
    stored_during_outage = link.outbox.count
    broker.start()
    outage.join(30)
    produce(300, 350)
    assert stored_during_outage > 0  # the outage really held reports back
    assert link.wait_drained(30), link.health()
    assert unique_seqs(sub, produced, 20) == produced  # every report, each once after dedup, in production order
    assert link.health()["connects"] >= 2


def test_exception_in_a_callback_is_counted_and_the_loop_goes_on(make_link, subscribe, broker):
    link = make_link()
    link.start()
    wait_for(lambda: link.connected, 10, "connection")

    def explode(*args):
        raise RuntimeError("handler bug")

    link.commands.handle = explode  # called from the on_message callback
    mosquitto_pub(broker.port, "edge-agent/dev1/cmd/status", "{}")
    wait_for(lambda: link.stats["callback_errors"] == 1, 10, "the callback error to be counted")
    sub = subscribe("edge-agent/dev1/report/#")
    link.publish_report("accuracy", {"status": "ok"})
    assert sub.collect(1, timeout=10), "publishing stopped after a callback exception"
    assert link.connected


def test_signed_command_answers_accepted_progress_result_over_mosquitto(make_link, subscribe, broker):
    calls = []

    def rebuild(args, progress):
        calls.append(args)
        progress(0.5, "building")
        return {"precision": args["precision"], "passed": True}

    link = make_link(handlers={"rebuild": rebuild})
    link.start()
    wait_for(lambda: link.connected, 10, "connection")
    time.sleep(0.2)  # the command subscription
    sub = subscribe("edge-agent/dev1/cmd/rebuild/response")
    request = make_request(KEY, "dev1", "rebuild", {"precision": "int8"})
    mosquitto_pub(broker.port, "edge-agent/dev1/cmd/rebuild", json.dumps(request))
    got = [p for _, p in sub.collect(3, timeout=10)]
    assert [p["status"] for p in got] == ["accepted", "progress", "ok"]
    assert all(p["id"] == request["id"] for p in got)
    assert got[2]["result"] == {"precision": "int8", "passed": True}
    assert calls == [{"precision": "int8", "calibrator": None}]


def test_wrong_key_gets_an_error_and_no_handler_call(make_link, subscribe, broker):
    calls = []
    link = make_link(handlers={"rebuild": lambda args, progress: calls.append(args)})
    link.start()
    wait_for(lambda: link.connected, 10, "connection")
    time.sleep(0.2)
    sub = subscribe("edge-agent/dev1/cmd/rebuild/response")
    request = make_request(b"not-the-key", "dev1", "rebuild", {"precision": "int8"})
    mosquitto_pub(broker.port, "edge-agent/dev1/cmd/rebuild", json.dumps(request))
    got = sub.collect(1, timeout=10)
    assert got and got[0][1]["status"] == "error" and got[0][1]["error"]["code"] == "bad_signature"
    assert got[0][1]["id"] == request["id"]
    time.sleep(0.3)
    assert calls == []


def test_outbox_eviction_is_reported_in_telemetry_and_as_an_event(make_link, subscribe, broker):
    sub = subscribe("edge-agent/dev1/#", extra=["-c", "-i", "eviction-subscriber"])
    broker.stop()  # offline: reports pile up and the bounds evict the oldest
    link = make_link(bounds=Bounds(5, 10**6, 1e6))
    link.start()
    for i in range(8):
        link.publish_report("calibration", {"n": i})
    time.sleep(1.5)  # the drop events are stored too (and may evict in turn)
    assert link.outbox.count == 5 and link.outbox.dropped >= 3
    broker.start()
    wait_for(lambda: link.connected, 15, "reconnection")
    assert link.wait_drained(10)
    total = link.outbox.dropped
    events = sub.collect(
        1, timeout=10, where=lambda t, p: t.endswith("/event") and p["details"]["dropped_total"] == total
    )
    assert events and events[0][1]["event"] == "outbox_dropped" and events[0][1]["severity"] == "warning"
    link.publish_telemetry({"fps": 30.0})
    telemetry = sub.collect(1, timeout=10, where=lambda t, p: t.endswith("/telemetry"))
    assert telemetry and telemetry[0][1]["dropped"] == total == telemetry[0][1]["outbox"]["dropped"]


def test_mqtt_311_works_too(make_link, subscribe, broker):
    from agent.mqtt.link import Settings

    sub = subscribe("edge-agent/dev311/report/#")
    link = make_link("dev311", settings=Settings("127.0.0.1", broker.port, protocol="3.1.1"))
    link.start()
    link.publish_report("build", {"ok": True})
    got = sub.collect(1, timeout=10)
    assert got and got[0][1]["device_id"] == "dev311"


def test_shared_subscription_spreads_reports_across_consumers_once_each(make_link, subscribe):
    """The documented scale-out: members of one $share group each get a part, together all, once."""
    members = [subscribe("$share/reports/edge-agent/+/report/#", extra=["-V", "mqttv5"]) for _ in range(2)]
    link = make_link()
    link.start()
    seqs = [link.publish_report("build", {"n": i}) for i in range(40)]
    assert link.wait_drained(10)
    parts = [[], []]
    deadline = time.monotonic() + 10
    while len(parts[0]) + len(parts[1]) < len(seqs) and time.monotonic() < deadline:
        for part, member in zip(parts, members):
            part += [p["seq"] for _, p in member.collect(1, timeout=0.05)]
    time.sleep(0.3)
    for part, member in zip(parts, members):  # nothing more comes: no member got a copy of another's
        part += [p["seq"] for _, p in member.collect(100, timeout=0.1)]
    assert sorted(parts[0] + parts[1]) == seqs
    assert parts[0] and parts[1]


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_two_devices_with_one_id_are_reported_and_do_not_spin(make_link, broker, caplog, protocol):
    """Each kicks the other off: logged as an error, counted, and reconnects slow to reconnect_max_s."""
    from agent.mqtt.link import Settings

    settings = Settings("127.0.0.1", broker.port, protocol=protocol, reconnect_min_s=0.05, reconnect_max_s=1.0)
    twins = [make_link("twin", settings=settings), make_link("twin", settings=settings)]
    for link in twins:
        link.start()
    time.sleep(3.0)
    taken_over = sum(link.stats["taken_over"] for link in twins)
    connects = sum(link.stats["connects"] for link in twins)
    assert taken_over >= 1
    assert connects <= 8  # about one per reconnect_max_s each; 0.05 s would give dozens
    assert any(
        "two devices share one device.id 'twin'" in r.getMessage() for r in caplog.records if r.levelname == "ERROR"
    )


def test_a_report_larger_than_the_outbox_is_refused_without_raising(make_link):
    link = make_link(bounds=Bounds(10, 1024, 1e6))
    link.publish_report("build", {"log": "x" * 4000})
    assert link.stats["too_large"] == 1 and link.outbox.count == 0
    assert link.dropped_total() == 1 and link.outbox.dropped == 1  # its seq was numbered: the books count it
    link.publish_report("build", {"log": "short"})
    assert link.outbox.count == 1
