"""The collector with a real mosquitto and a real store of each dialect: kinds, rejects, shared load, crashes."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from agent.fleet.collector import Collector
from agent.fleet.store import Store, open_store
from agent.mqtt.link import Settings
from agent.mqtt.messages import Topics, encode, envelope
from tests.mqtt.brokers import Broker

from .helpers import PREFIX, REPO, collector_command, fleet_config, publish_all, start_collector, telemetry, wait_for


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    server = Broker(tmp_path / "broker").start()
    yield server
    server.stop()


class Running:
    """A Collector on its own thread (in this process), stopped by :meth:`stop`."""

    def __init__(self, port: int, store: Store, client_id: str, **fleet: object) -> None:
        self.collector = Collector(
            Settings("127.0.0.1", port), fleet_config(group="tests", batch_wait_s=0.05, **fleet), store, client_id
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.collector.run, args=(self._stop,), daemon=True)
        self._thread.start()
        assert self.collector.subscribed.wait(15), "the collector did not subscribe"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)
        assert not self._thread.is_alive()


def _stored(store: Store) -> int:
    return sum(v for k, v in store.counts().items() if k not in ("quarantined", "duplicates"))


def _subscribed(broker: Broker, store_url: str) -> Store:
    """The store, once a probe message published now has reached it (the collector has subscribed)."""
    store = open_store(store_url)
    store.migrate()

    def probe_stored() -> bool:
        publish_all(broker.port, [telemetry("probe", 1)])
        return _stored(store) == 1

    wait_for("the collector subscribed", probe_stored)
    return store


def test_every_kind_is_stored_once_and_bad_messages_are_kept_aside(broker: Broker, store: Store) -> None:
    running = Running(broker.port, store, "c-kinds")
    t = Topics(PREFIX, "cam1")
    good = [
        (t.status, "status", {"state": "online", "version": "1"}),
        (t.telemetry, "telemetry", {"dropped": 0, "outbox": {"messages": 0, "bytes": 0, "dropped": 0}}),
        (t.event, "event", {"name": "drift", "severity": "warning"}),
        (t.report("benchmark"), "benchmark", {"throughput_ips": 100.0}),
        (t.report("accuracy"), "accuracy", {"status": "ok"}),
        (t.report("build"), "build", {"ok": True}),
        (t.report("calibration"), "calibration", {"frames": 100}),
        (t.response("rebuild"), "response", {"id": "r1", "status": "ok"}),
    ]
    messages: List[Tuple[str, bytes]] = [
        (topic, encode(envelope(kind, "cam1", seq, body))) for seq, (topic, kind, body) in enumerate(good, start=1)
    ]
    messages += [
        messages[1],  # a repeat (the broker redelivering, or a device replaying its outbox)
        (t.telemetry, b"\x00 not json"),
        (
            t.telemetry,
            json.dumps({**json.loads(messages[1][1]), "schema": "edge-agent/telemetry/7", "seq": 50}).encode(),
        ),
        (t.report("build"), encode(envelope("benchmark", "cam1", 51, {}))),
        (t.command("rebuild"), b'{"id": "r1", "args": {}}'),  # a request to the device: not stored, not bad
    ]
    publish_all(broker.port, messages)
    wait_for("all messages handled", lambda: running.collector.stats["received"] >= len(messages))
    running.stop()
    counts = store.counts()
    assert counts == {**{kind: 1 for _, kind, _ in good}, "quarantined": 3, "duplicates": 1}
    assert running.collector.stats == {
        "received": 13,
        "stored": 8,
        "duplicates": 1,
        "rejected": 3,
        "skipped": 1,
        "store_retries": 0,
    }
    reasons = sorted(q["reason"].split(":")[0] for q in store.quarantined())
    assert reasons[0].startswith("payload is not UTF-8 JSON") and any("unknown schema" in r for r in reasons)
    assert store.devices()[0]["online"] is True
    assert store.latest("cam1", "response")["id"] == "r1"


def test_two_collectors_in_one_group_split_the_load_and_store_it_once(broker: Broker, store_url: str) -> None:
    stores = [open_store(store_url) for _ in range(2)]
    stores[0].migrate()
    running = [Running(broker.port, s, f"c-share-{i}") for i, s in enumerate(stores)]
    messages = [telemetry(f"cam{d}", seq) for seq in range(1, 21) for d in range(20)]
    publish_all(broker.port, messages)
    wait_for("400 rows", lambda: _stored(stores[0]) >= 400)
    for r in running:
        r.stop()
    shares = [r.collector.stats["stored"] for r in running]
    assert sum(shares) == 400 and min(shares) > 0, shares  # both took part, nothing twice
    assert stores[0].counts() == {"telemetry": 400, "quarantined": 0, "duplicates": 0}
    for s in stores:
        s.close()


def test_a_failing_store_is_tried_again_and_nothing_is_lost(broker: Broker, store_url: str) -> None:
    store = open_store(store_url)
    store.migrate()
    running = Running(broker.port, store, "c-retry")
    other = open_store(store_url)  # another client breaks the store for a while: its table is gone
    other._run("ALTER TABLE messages RENAME TO messages_away")
    publish_all(broker.port, [telemetry("cam1", seq) for seq in range(1, 11)])
    wait_for("a failed attempt to store", lambda: running.collector.stats["store_retries"] >= 1)
    other._run("ALTER TABLE messages_away RENAME TO messages")
    wait_for("the batch stored", lambda: running.collector.stats["stored"] == 10)
    running.stop()
    assert store.counts() == {"telemetry": 10, "quarantined": 0, "duplicates": 0}
    other.close()
    store.close()


def test_kill_9_then_restart_keeps_every_message_exactly_once(broker: Broker, store_url: str, tmp_path: Path) -> None:
    log = tmp_path / "collector.log"
    proc = start_collector(broker.port, store_url, "c-crash", log)
    assert proc.stdout is not None and "collecting into" in proc.stdout.readline()
    probe = _subscribed(broker, store_url)
    devices, per_device = 20, 60
    messages = [telemetry(f"cam{d}", seq) for seq in range(1, per_device + 1) for d in range(devices)]
    sender = threading.Thread(target=publish_all, args=(broker.port, messages, "crash-pub", 400.0))
    sender.start()
    wait_for("some rows stored", lambda: _stored(probe) > 200)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    killed_with = _stored(probe)
    sender.join(60)
    assert killed_with < 1 + len(messages), "the kill came after the load: nothing was tested"
    proc = start_collector(broker.port, store_url, "c-crash", log)
    wait_for("every message stored", lambda: _stored(probe) >= 1 + len(messages), timeout=60)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0, log.read_text()
    rows = probe._run("SELECT COUNT(*), COUNT(DISTINCT device_id || ':' || CAST(seq AS TEXT)) FROM messages")
    assert rows[0] == (1 + len(messages), 1 + len(messages))
    for d in range(devices):
        seqs = [p["seq"] for _, p in probe.series(f"cam{d}", "telemetry")]
        assert sorted(seqs) == list(range(1, per_device + 1))
    probe.close()


def test_sigterm_stores_what_arrived_and_exits_0_with_its_figures(broker: Broker, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.sqlite'}"
    proc = subprocess.Popen(
        collector_command(broker.port, url, "c-term"),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and "collecting into sqlite store as c-term" in proc.stdout.readline()
    store = _subscribed(broker, url)
    publish_all(broker.port, [telemetry("cam1", seq) for seq in range(1, 51)])
    wait_for("50 rows", lambda: _stored(store) == 51)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["stored"] == 51
    store.close()


def test_a_collector_refuses_mqtt_3(store: Store) -> None:
    with pytest.raises(ValueError, match="needs MQTT 5"):
        Collector(Settings("127.0.0.1", 1883, protocol="3.1.1"), fleet_config(), store)
