"""The scheduler's timing rules."""

from __future__ import annotations

import pytest

from agent.daemon.scheduler import Scheduler


def test_jobs_come_due_at_their_intervals():
    s = Scheduler({"telemetry": 10.0, "benchmark": 60.0, "check": 0.0}, now=0.0)
    assert s.due(9.9) == []
    assert s.due(10.0) == ["telemetry"]
    assert s.due(19.0) == []
    assert s.due(60.0) == ["telemetry", "benchmark"]  # telemetry was due at 20, benchmark at 60
    assert s.seconds_to_next(60.0) == 10.0


def test_a_late_job_runs_once_not_in_a_burst():
    s = Scheduler({"telemetry": 1.0}, now=0.0)
    assert s.due(10.5) == ["telemetry"]
    assert s.due(10.6) == []
    assert s.due(11.5) == ["telemetry"]


def test_zero_disables_and_trigger_runs_now():
    s = Scheduler({"check": 0.0}, now=0.0)
    assert s.due(1e9) == [] and s.seconds_to_next(0.0) is None
    s.trigger("check", 5.0)
    assert s.due(5.0) == ["check"]
    assert s.due(1e9) == []


def test_set_interval_restarts_the_count():
    s = Scheduler({"telemetry": 10.0}, now=0.0)
    s.set_interval("telemetry", 2.0, now=5.0)
    assert s.due(6.9) == [] and s.due(7.0) == ["telemetry"]
    with pytest.raises(ValueError, match="telemetry"):
        s.set_interval("telemetry", -1.0, now=0.0)
