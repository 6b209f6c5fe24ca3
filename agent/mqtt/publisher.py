"""Where the daemon's reports go: the MQTT link (agent.mqtt.DeviceLink) or, without MQTT, the log.

Both offer the same calls: publish_report(kind, body), publish_event(event, severity, message,
details), publish_telemetry(body), update_status(), wait_drained(timeout), stop(timeout).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Dict, Mapping, Optional

from agent.util.schema import Node

log = logging.getLogger(__name__)
StatusFields = Callable[[], Dict[str, Any]]


class LogPublisher:
    """Reports, events, telemetry and status as JSON log lines (mqtt.enabled: false)."""

    def __init__(self, status_fields: StatusFields) -> None:
        self.status_fields = status_fields
        self.seq = 0

    def _emit(self, what: str, body: Mapping[str, Any]) -> int:
        self.seq += 1
        log.info("%s: %s", what, json.dumps(body, default=str, sort_keys=True))
        return self.seq

    def publish_report(self, kind: str, body: Dict[str, Any]) -> int:
        return self._emit(f"report {kind}", body)

    def publish_event(self, event: str, severity: str, message: str, details: Optional[Dict[str, Any]] = None) -> int:
        return self._emit(f"event {event}", {"severity": severity, "message": message, "details": details or {}})

    def publish_telemetry(self, body: Dict[str, Any]) -> int:
        return self._emit("telemetry", body)

    def update_status(self) -> None:
        self._emit("status online", self.status_fields())

    def start(self) -> None:
        """Nothing to connect to."""

    def wait_drained(self, timeout: float) -> bool:
        return True

    def stop(self, timeout: float = 5.0) -> None:
        self._emit("status stopped", self.status_fields())


def open_publisher(cfg: Node, handlers: Mapping[str, Any], status_fields: StatusFields) -> Any:
    """The MQTT link serving ``handlers`` (name -> handler(args, progress)) when mqtt.enabled, else the log."""
    if not cfg.mqtt.enabled:
        return LogPublisher(status_fields)
    from agent.mqtt.link import open_command_server, open_link

    server = open_command_server(cfg, dict(handlers))
    return open_link(cfg, server, status_fields)
