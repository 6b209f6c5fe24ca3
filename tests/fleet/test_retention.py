"""Retention: the plan from the policy (pure), and the plan applied to a store of each dialect."""

from __future__ import annotations

import dataclasses

from agent.config.keys import schema_tree
from agent.config.sections import FleetRetentionConfig
from agent.fleet import retention
from agent.fleet.store import Message, Store

DAY = retention.DAY_S
NOW = 100 * DAY


def _defaults() -> FleetRetentionConfig:
    fields = schema_tree()["fleet"]["retention"]
    return FleetRetentionConfig.from_node({name: field.default for name, field in fields.items()})


def test_plan_turns_days_into_cutoffs_and_zero_into_forever() -> None:
    policy = dataclasses.replace(_defaults(), telemetry_days=30.0, report_days=0.0, downsample_after_days=7.0)
    todo = retention.plan(policy, NOW)
    assert todo.prune["telemetry"] == NOW - 30 * DAY
    assert "benchmark" not in todo.prune and "accuracy" not in todo.prune
    assert todo.prune["event"] == NOW - policy.event_days * DAY
    assert todo.thin_before == NOW - 7 * DAY and todo.bucket_s == policy.downsample_bucket_s
    never = retention.plan(dataclasses.replace(policy, downsample_after_days=0.0, quarantine_days=0.0), NOW)
    assert never.thin_before is None and never.quarantine_before is None


def _row(device: str, seq: int, kind: str, ts: float) -> Message:
    return Message(device, seq, kind, f"edge-agent/{device}/{kind}", ts, {"seq": seq})


def test_apply_drops_old_telemetry_thins_the_middle_and_keeps_reports(store: Store) -> None:
    policy = dataclasses.replace(
        _defaults(), telemetry_days=30.0, report_days=365.0, downsample_after_days=7.0, downsample_bucket_s=3600.0
    )
    minute = 60.0
    rows = []
    seq = 0
    for age_days in (40, 10, 1):  # too old, to be thinned, recent
        for i in range(12):  # one every 5 minutes for an hour
            seq += 1
            rows.append(_row("cam1", seq, "telemetry", NOW - age_days * DAY + i * 5 * minute))
    rows.append(_row("cam1", 1000, "benchmark", NOW - 40 * DAY))
    store.insert(rows)
    removed = retention.apply(store, retention.plan(policy, NOW))
    assert removed["telemetry"] == 12
    assert removed["telemetry_thinned"] >= 10  # one hour, one or two buckets kept
    kept = [ts for ts, _ in store.series("cam1", "telemetry")]
    assert len([t for t in kept if t < NOW - 7 * DAY]) in (1, 2)
    assert len([t for t in kept if t > NOW - 2 * DAY]) == 12
    assert store.counts()["benchmark"] == 1
