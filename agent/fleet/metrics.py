"""Prometheus metrics of the fleet, read from the store at each scrape (``/metrics``).

:func:`samples` is the pure part (device records in, labelled values out); :func:`exposition`
turns them into Prometheus' text format through prometheus_client's custom-collector API
(https://prometheus.github.io/client_python/collector/custom/: a collector's ``collect`` yields
``GaugeMetricFamily`` objects; ``generate_latest`` renders a registry). prometheus_client is
imported when asked for, so a device without it still runs every other command.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, List, Mapping, NamedTuple, Tuple

from agent.fleet.views import class_recalls, dig, drift_status, fleet_row, number
from agent.util.errors import MissingDependency

DRIFT_LEVELS = {"ok": 0.0, "warn": 1.0, "alert": 2.0}

# name -> (help, label names); every gauge carries ``device`` first.
GAUGES: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "edge_agent_up": ("1 while the device's latest status is online, else 0", ()),
    "edge_agent_last_seen_timestamp_seconds": ("When the device's last message was sent (Unix time)", ()),
    "edge_agent_fps": ("Frames per second the device is serving (telemetry)", ()),
    "edge_agent_latency_ms": ("Inference latency quantile in milliseconds", ("quantile",)),
    "edge_agent_power_watts": ("Power drawn, from telemetry or the latest benchmark", ()),
    "edge_agent_energy_mj_per_inference": ("Energy per inference in millijoules (latest benchmark)", ()),
    "edge_agent_temperature_celsius": ("Temperature of each sensor the device reports", ("sensor",)),
    "edge_agent_recall": ("Recall of each class in the latest accuracy report", ("class",)),
    "edge_agent_recall_ci95_low": ("Low end of each class's recall Wilson 95% interval", ("class",)),
    "edge_agent_recall_ci95_high": ("High end of each class's recall Wilson 95% interval", ("class",)),
    "edge_agent_drift_status": ("Drift status of the latest accuracy report: 0 ok, 1 warn, 2 alert", ()),
    "edge_agent_outbox_messages": ("Messages waiting in the device's outbox", ()),
    "edge_agent_outbox_dropped": ("Messages the device's outbox bounds evicted, in total", ()),
}


class Sample(NamedTuple):
    name: str
    labels: Tuple[str, ...]  # values, in the order of GAUGES' label names after ``device``
    value: float


def _device_samples(device: Mapping[str, Any]) -> Iterator[Sample]:
    row = fleet_row(device)
    name = str(row["device"])
    yield Sample("edge_agent_up", (name,), 1.0 if row["online"] else 0.0)
    if row["last_seen"] is not None:
        yield Sample("edge_agent_last_seen_timestamp_seconds", (name,), row["last_seen"])
    for metric, key in (
        ("edge_agent_fps", "fps"),
        ("edge_agent_power_watts", "power_w"),
        ("edge_agent_energy_mj_per_inference", "mj_per_inference"),
    ):
        if row[key] is not None:
            yield Sample(metric, (name,), row[key])
    for quantile, key in (("0.5", "p50_ms"), ("0.99", "p99_ms")):
        if row[key] is not None:
            yield Sample("edge_agent_latency_ms", (name, quantile), row[key])
    telemetry = device.get("telemetry") if isinstance(device.get("telemetry"), dict) else {}
    temps = dig(telemetry, "system.temperatures_c")
    for sensor, value in sorted(temps.items()) if isinstance(temps, dict) else []:
        if number(value) is not None:
            yield Sample("edge_agent_temperature_celsius", (name, str(sensor)), float(value))
    for metric, path in (
        ("edge_agent_outbox_messages", "outbox.messages"),
        ("edge_agent_outbox_dropped", "outbox.dropped"),
    ):
        value = number(dig(telemetry, path))
        if value is not None:
            yield Sample(metric, (name,), value)
    accuracy = device.get("accuracy")
    if isinstance(accuracy, dict):
        yield from _accuracy_samples(name, accuracy)


def _accuracy_samples(name: str, report: Mapping[str, Any]) -> Iterator[Sample]:
    for cls, figures in sorted(class_recalls(report).items()):
        for metric, value in zip(
            ("edge_agent_recall", "edge_agent_recall_ci95_low", "edge_agent_recall_ci95_high"), figures
        ):
            if value is not None:
                yield Sample(metric, (name, cls), value)
    status = drift_status(report)
    if status in DRIFT_LEVELS:
        yield Sample("edge_agent_drift_status", (name,), DRIFT_LEVELS[status])


def samples(devices: Iterable[Mapping[str, Any]]) -> List[Sample]:
    """Every gauge value of every device (a store's ``devices()`` records)."""
    return [sample for device in devices for sample in _device_samples(device)]


class FleetCollector:
    """A prometheus_client collector over a store: each scrape reads ``store.devices()`` once."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        families = {
            name: GaugeMetricFamily(name, text, labels=("device",) + labels) for name, (text, labels) in GAUGES.items()
        }
        for sample in samples(self.store.devices()):
            families[sample.name].add_metric(list(sample.labels), sample.value)
        yield from families.values()


def exposition(store: Any) -> Tuple[bytes, str]:
    """(body, content type) of a scrape of the store, in Prometheus' text format."""
    try:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    except ImportError:
        raise MissingDependency(
            "/metrics needs prometheus_client, which is not installed: pip install 'edge-agent[fleet]'"
        ) from None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(store))
    return generate_latest(registry), CONTENT_TYPE_LATEST
