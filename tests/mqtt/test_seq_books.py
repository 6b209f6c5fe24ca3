"""Every seq the link numbers is received, counted as dropped, or an ``offline`` will it numbered
that the broker never published (issue 15, fault soak): a real mosquitto restarted N times."""

from __future__ import annotations

import time

import pytest

from .conftest import wait_for

pytestmark = pytest.mark.mqtt
RESTARTS = 3


def test_numbered_seqs_are_received_dropped_or_unsent_wills(make_link, subscribe, broker):
    sub = subscribe("edge-agent/dev1/#", extra=["-c", "-i", "books-subscriber", "-q", "1"])
    link = make_link()
    link.start()
    wait_for(lambda: link.connected, 10, "connection")
    numbered = []
    for _ in range(RESTARTS):
        numbered += [link.publish_event("config_reloaded", "info", f"n{i}") for i in range(20)]
        broker.stop()
        wait_for(lambda: not link.connected, 10, "the link to notice the outage")
        numbered += [link.publish_event("config_reloaded", "info", f"o{i}") for i in range(5)]
        broker.start()
        wait_for(lambda: link.connected, 20, "a reconnect")
    assert link.wait_drained(30), link.health()
    health = link.health()
    link.stop(timeout=5)
    time.sleep(1.0)
    got = sub.collect(10_000, timeout=3)
    received = {body["seq"] for _, body in got if isinstance(body, dict) and "seq" in body}
    offline = {body["seq"] for _, body in got if isinstance(body, dict) and body.get("state") == "offline"}
    first, last = min(numbered) - 2, max(received)  # the start-up will and online status come first
    assert set(numbered) <= received
    assert health["wills_numbered"] == RESTARTS + 1
    total = last - first + 1
    assert total == len(received & set(range(first, last + 1))) + health["dropped"] + (
        health["wills_numbered"] - len(offline)
    ), (sorted(set(range(first, last + 1)) - received), health)
