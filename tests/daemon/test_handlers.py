"""The daemon's command table (agent.daemon.handlers) against the command schemas, and the
handlers' answers on a daemon that is not serving yet."""

from __future__ import annotations

from typing import Optional

import pytest

from agent.daemon import handlers
from agent.daemon.supervisor import Daemon
from agent.mqtt.commands import COMMANDS
from agent.util.errors import EdgeAgentError, InputError
from agent.util.schema import Node


def no_progress(fraction: Optional[float], message: str) -> None:
    """A command's progress callback that drops what it gets."""


def test_the_table_routes_every_command_the_schemas_define():
    assert set(handlers.HANDLERS) == set(COMMANDS)


def test_set_interval_changes_the_schedule(demo_cfg):
    daemon = Daemon(demo_cfg, None, environ={})
    answer = handlers.bind(daemon)["set_interval"]({"schedule": "benchmark", "seconds": 30.0}, no_progress)
    assert answer == {"schedule": "benchmark", "seconds": 30.0, "next_job_in_s": pytest.approx(30.0, abs=0.5)}


def test_rollback_without_a_previous_engine_is_an_input_error(demo_cfg):
    with pytest.raises(InputError, match="no previous engine"):
        handlers.rollback(Daemon(demo_cfg, None, environ={}), {}, no_progress)


@pytest.mark.parametrize("command, args", [("capture_samples", {"count": 2}), ("label", {"labels": {"a": "face"}})])
def test_live_commands_before_the_loop_runs_say_so(demo_cfg, command, args):
    with pytest.raises(EdgeAgentError, match=f"{command}: the inference loop is not running yet"):
        handlers.bind(Daemon(demo_cfg, None, environ={}))[command](args, no_progress)


def test_calibrate_refuses_a_camera_the_daemon_holds(demo_cfg):
    cfg = Node(demo_cfg, source=Node(demo_cfg.source, kind="v4l2"))
    with pytest.raises(InputError, match="holds the v4l2 camera"):
        handlers.calibrate(Daemon(cfg, None, environ={}), {"source": None, "frames": None}, no_progress)


def test_a_swapped_rebuild_in_a_few_fields():
    result = {
        "status": "swapped",
        "job": "j1",
        "duration_s": 3.0,
        "swap": {"from": "onnxruntime fp32", "to": "onnxruntime int8", "gap_ms": 12.0, "max_gap_before_ms": 40.0},
        "build": {"built_precision": "int8", "gate": {"passed": True, "top1_agreement": 0.99}, "report_path": "r.json"},
    }
    summary = handlers.command_summary(result)
    assert summary["to"] == "onnxruntime int8" and summary["swap_gap_ms"] == 12.0
    assert summary["gate_passed"] is True and summary["top1_agreement"] == 0.99 and summary["report_path"] == "r.json"
