"""Case 6 of issue 15 (schedule part): sane minimums, and jobs handed to the inference thread never pile up."""

from __future__ import annotations

import pytest

from agent.config.load import load_config
from agent.daemon.scheduler import Scheduler
from agent.util.errors import ConfigError


def test_an_interval_below_the_minimum_is_refused_and_zero_still_disables():
    s = Scheduler({"check": 3600.0}, now=0.0)
    with pytest.raises(ValueError, match=r"schedules.check_s: 0 \(off\) or at least 2 s, got 1e-09"):
        s.set_interval("check", 1e-9, now=0.0)
    s.set_interval("check", 0.0, now=0.0)
    assert s.due(1e9) == []


def test_a_started_job_is_not_queued_again_until_it_is_done():
    s = Scheduler({"check": 2.0}, now=0.0)
    assert s.due(2.0) == ["check"]
    s.started("check")
    assert [s.due(t) for t in (4.0, 6.0, 100.0)] == [[], [], []]  # a slow check: nothing piles up
    s.done("check", now=100.0)
    assert s.due(101.9) == [] and s.due(102.0) == ["check"]  # one interval after it ended


def test_the_config_file_refuses_a_starving_check_interval(tmp_path):
    config = tmp_path / "agent.yaml"
    config.write_text("schedules:\n  check_s: 0.5\n")
    with pytest.raises(ConfigError) as raised:
        load_config(str(config))
    assert any("schedules.check_s: 0 (off) or at least 2 s, got 0.5" in e for e in raised.value.errors)
