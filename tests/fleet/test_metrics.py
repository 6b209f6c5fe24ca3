"""Prometheus gauges from the store: the pure samples, and the exposition read back by
prometheus_client's own text parser."""

from __future__ import annotations

from typing import Dict, Tuple

from prometheus_client.parser import text_string_to_metric_families

from agent.fleet import metrics
from agent.fleet.store import Store
from agent.mqtt.messages import envelope, utc_timestamp

from . import dashboard_payloads as P


def scrape(store: Store) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]:
    body, content_type = metrics.exposition(store)
    assert content_type.startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(body.decode("utf-8")):
        assert family.type == "gauge" and family.documentation
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_every_gauge_of_both_devices_is_scraped(store: Store) -> None:
    P.fill(store)
    got = scrape(store)
    a, b = (("device", "cam-a"),), (("device", "cam-b"),)
    assert got[("edge_agent_up", a)] == 1.0 and got[("edge_agent_up", b)] == 0.0
    assert got[("edge_agent_fps", a)] == 35.0
    assert got[("edge_agent_latency_ms", a + (("quantile", "0.5"),))] == 8.0
    assert got[("edge_agent_latency_ms", a + (("quantile", "0.99"),))] == 17.0
    assert got[("edge_agent_power_watts", b)] == 9.0
    assert got[("edge_agent_energy_mj_per_inference", a)] == 120.0
    assert got[("edge_agent_temperature_celsius", (("device", "cam-a"), ("sensor", "gpu")))] == 55.0
    assert got[("edge_agent_recall", (("class", "face"), ("device", "cam-b")))] == 0.6
    assert got[("edge_agent_recall_ci95_low", (("class", "face"), ("device", "cam-b")))] == 0.5
    assert got[("edge_agent_drift_status", a)] == 0.0 and got[("edge_agent_drift_status", b)] == 2.0
    assert got[("edge_agent_outbox_messages", b)] == 3.0
    assert got[("edge_agent_last_seen_timestamp_seconds", b)] == P.T0 + 70
    assert ("edge_agent_energy_mj_per_inference", b) not in got  # cam-b ran no benchmark


def test_an_empty_store_scrapes_to_no_samples(store: Store) -> None:
    assert scrape(store) == {}


def test_samples_skip_what_is_not_a_number_and_unknown_drift_states() -> None:
    telemetry = P.telemetry(10.0, 1.0, 2.0, 1000.0, {"gpu": 40.0})
    telemetry["system"]["temperatures_c"]["broken"] = None
    report = P.accuracy({"face": 0.5})
    report["drift"]["status"] = "unheard-of"
    device = {
        "device_id": "d",
        "online": True,
        "last_seen": P.T0,
        "telemetry": envelope("telemetry", "d", 1, dict(telemetry, ts=utc_timestamp(P.T0))),
        "accuracy": report,
    }
    names = {(s.name, s.labels) for s in metrics.samples([device])}
    assert ("edge_agent_temperature_celsius", ("d", "gpu")) in names
    assert ("edge_agent_temperature_celsius", ("d", "broken")) not in names
    assert not any(name == "edge_agent_drift_status" for name, _ in names)
    assert all(metrics.GAUGES[name] for name, _ in names)
