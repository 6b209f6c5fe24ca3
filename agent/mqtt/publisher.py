"""Where the daemon's reports go: the MQTT link (agent.mqtt.link.DeviceLink) or, without MQTT, the log.

Both satisfy :class:`Publisher`; :func:`open_publisher` picks one from the configuration.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple

from agent.config.sections import Config
from agent.mqtt.events import Event
from agent.mqtt.link import open_command_server, open_link

log = logging.getLogger(__name__)
StatusFields = Callable[[], Dict[str, Any]]


class Publisher(Protocol):
    """What the daemon publishes through; ``publish_*`` return the payload's sequence number."""

    def start(self) -> None: ...

    def publish_report(self, kind: str, body: Dict[str, Any]) -> int: ...

    def publish_event(
        self, event: Event, severity: str, message: str, details: Optional[Dict[str, Any]] = None
    ) -> int: ...

    def publish_telemetry(self, body: Dict[str, Any]) -> int: ...

    def publish_results(
        self, results: Sequence[Tuple[str, Dict[str, Any]]], qos: int = 0, store: bool = False
    ) -> List[Optional[int]]:
        """Inference results, each (source id, body); their seqs, None where dropped (transient and offline)."""

    def publish_snapshot(self, source_id: str, jpeg: bytes) -> bool:
        """One source's latest snapshot (retained, transient); False when it was dropped."""

    def update_status(self) -> None:
        """Publish the status again (after the engine changed)."""

    def wait_drained(self, timeout: float) -> bool:
        """Wait until everything stored was delivered; False on timeout."""

    def stop(self, timeout: float = 5.0) -> None:
        """Publish the ``stopped`` status and let go of the connection."""


class LogPublisher:
    """Reports, events, telemetry and status as JSON log lines (mqtt.enabled: false); results at debug level."""

    def __init__(self, status_fields: StatusFields) -> None:
        self.status_fields = status_fields
        self.seq = 0

    def _emit(self, what: str, body: Mapping[str, Any]) -> int:
        self.seq += 1
        log.info("%s: %s", what, json.dumps(body, default=str, sort_keys=True))
        return self.seq

    def publish_report(self, kind: str, body: Dict[str, Any]) -> int:
        return self._emit(f"report {kind}", body)

    def publish_event(self, event: Event, severity: str, message: str, details: Optional[Dict[str, Any]] = None) -> int:
        body = {"severity": severity, "message": message, "details": details or {}}
        return self._emit(f"event {Event(event).value}", body)

    def publish_telemetry(self, body: Dict[str, Any]) -> int:
        return self._emit("telemetry", body)

    def publish_results(
        self, results: Sequence[Tuple[str, Dict[str, Any]]], qos: int = 0, store: bool = False
    ) -> List[Optional[int]]:
        seqs: List[Optional[int]] = []
        debug = log.isEnabledFor(logging.DEBUG)  # every frame: at debug level only, and only encoded then
        for source_id, body in results:
            self.seq += 1
            seqs.append(self.seq)
            if debug:
                log.debug("result %s: %s", source_id, json.dumps(body, default=str, sort_keys=True))
        return seqs

    def publish_snapshot(self, source_id: str, jpeg: bytes) -> bool:
        log.debug("snapshot %s: %d bytes of JPEG", source_id, len(jpeg))
        return True

    def update_status(self) -> None:
        self._emit("status online", self.status_fields())

    def start(self) -> None:
        """Nothing to connect to."""

    def wait_drained(self, timeout: float) -> bool:
        return True

    def stop(self, timeout: float = 5.0) -> None:
        self._emit("status stopped", self.status_fields())


def open_publisher(config: Config, handlers: Mapping[str, Any], status_fields: StatusFields) -> Publisher:
    """The MQTT link serving ``handlers`` (name -> handler(args, progress)) when mqtt.enabled, else the log.
    Takes the whole configuration: mqtt, commands, device (the client id) and paths (the outbox)."""
    if not config.mqtt.enabled:
        return LogPublisher(status_fields)

    server = open_command_server(config.commands, config.device.id, dict(handlers))
    return open_link(config.mqtt, config.device.id, config.paths.state_dir, server, status_fields)
