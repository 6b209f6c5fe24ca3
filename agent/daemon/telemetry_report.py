"""The telemetry the daemon publishes every schedules.telemetry_s, as one typed record.

The MQTT link adds the outbox's state (``outbox``, ``dropped``, ``wills_numbered``) and the envelope; together they
make docs/schemas/telemetry.json.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional

from agent.util.records import KEEP_NONE, record_json


@dataclasses.dataclass(frozen=True)
class ProcessStats:
    """This process's footprint."""

    rss_mb: float
    open_fds: int
    threads: int

    @classmethod
    def now(cls) -> ProcessStats:
        import psutil

        process = psutil.Process()
        return cls(round(process.memory_info().rss / 1e6, 1), process.num_fds(), process.num_threads())

    def to_json(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class TelemetryReport:
    """One telemetry message's body, before the link adds the outbox's state."""

    pipeline: Dict[str, Any]  # agent.daemon.loop.InferenceLoop.stats()
    capture: Dict[str, Any]  # agent.sources.latest.combined_stats(): all sources together
    sources: List[Dict[str, Any]]  # per source, in config order: LatestFrameCapture.stats() (with its id)
    process: ProcessStats
    watchdog_pings: int
    system: Dict[str, Any]  # agent.daemon.jobs.system_telemetry(): power, temperatures, clocks, load
    # agent.daemon.livechecks.LiveChecks.snapshot(); None (sent as null) before they start
    live_checks: Optional[Dict[str, Any]] = dataclasses.field(metadata=KEEP_NONE)
    # agent.daemon.snapshots.ResultOutputs.stats(): results published and dropped, snapshots
    results: Optional[Dict[str, Any]] = None

    def to_json(self) -> Dict[str, Any]:
        return record_json(self)
