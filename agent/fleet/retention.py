"""Per-kind retention of the fleet store, and telemetry downsampling after an age.

:func:`plan` is pure (the configured policy and the time -> what to delete and thin);
:func:`apply` runs a plan on a store. The latest message of each device and kind is never
removed (the store keeps it apart), so a quiet device still shows its last state.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional

from agent.config.sections import FleetRetentionConfig
from agent.fleet.store import Store
from agent.mqtt.messages import REPORT_KINDS

DAY_S = 86400.0


class Plan(NamedTuple):
    prune: Dict[str, float]  # kind -> delete messages older than this (epoch s)
    quarantine_before: Optional[float]  # delete quarantined messages received before this
    thin_before: Optional[float]  # telemetry older than this keeps one message per device and bucket
    bucket_s: float


def _days(policy: FleetRetentionConfig) -> Dict[str, float]:
    out = {
        "telemetry": policy.telemetry_days,
        "status": policy.status_days,
        "event": policy.event_days,
        "response": policy.response_days,
        "result": policy.result_days,
    }
    out.update((kind, policy.report_days) for kind in REPORT_KINDS)
    return out


def plan(policy: FleetRetentionConfig, now: float) -> Plan:
    """What retention does at ``now`` (0 days = keep forever, never downsample)."""
    prune = {kind: now - days * DAY_S for kind, days in _days(policy).items() if days > 0}
    quarantine = now - policy.quarantine_days * DAY_S if policy.quarantine_days > 0 else None
    thin = now - policy.downsample_after_days * DAY_S if policy.downsample_after_days > 0 else None
    return Plan(prune, quarantine, thin, policy.downsample_bucket_s)


def apply(store: Store, todo: Plan) -> Dict[str, int]:
    """Run ``todo``; rows removed per step ('telemetry', 'telemetry_thinned', 'quarantine', ...)."""
    removed: Dict[str, int] = {}
    steps: List[str] = sorted(todo.prune)
    for kind in steps:
        removed[kind] = store.prune(kind, todo.prune[kind])
    if todo.thin_before is not None:
        removed["telemetry_thinned"] = store.thin("telemetry", todo.thin_before, todo.bucket_s)
    if todo.quarantine_before is not None:
        removed["quarantine"] = store.prune_quarantine(todo.quarantine_before)
    return removed
