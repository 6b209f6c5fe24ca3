"""Case 10 of issue 15: a stop during the INT8 build. The real gated build (ONNX Runtime, the demo's
ONet) is handed a cancel check that turns true at a given point; it must end there with Cancelled,
leaving no working folder in the calibration set and no engine promoted."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List

import pytest

from agent.build import engine as building
from agent.util.cancel import Cancelled, ambient, cancelling, check, scope
from agent.util.processes import wait_unless
from calibration.datasets import current_set


def searches(config) -> List[Path]:
    return list(Path(config.paths.calibration_dir).glob("*/.search-*"))


def test_a_cancel_during_calibration_collection_stops_it_and_stores_no_set(demo_config):
    seen: List[int] = []

    def progress(label: str, done: int, total: int, detail: str) -> None:
        seen.append(done)

    with pytest.raises(Cancelled, match="calibration frames: cancelled"):
        building.build(demo_config, precision="int8", progress=progress, cancel=lambda: len(seen) >= 10)
    assert len(seen) == 10
    assert current_set(demo_config.paths.calibration_dir) is None


def when_inside_search(config, then: Callable[[], bool]) -> Callable[[], bool]:
    """A cancel check that is false until the search's working folder exists, then ``then()``."""
    return lambda: bool(searches(config)) and then()


def test_a_cancel_between_candidates_removes_the_search_folder(demo_config):
    with pytest.raises(Cancelled, match="INT8 search: cancelled"):
        building.build(demo_config, precision="int8", cancel=when_inside_search(demo_config, lambda: True))
    assert current_set(demo_config.paths.calibration_dir) is not None  # collected before the search
    assert searches(demo_config) == []


def test_a_cancel_during_the_evaluation_batches_stops_the_gate(demo_config):
    calls = {"after_build": 0}

    def inside_evaluation() -> bool:  # the attempt's engine is built: the next checks are its batches
        if not list(Path(demo_config.paths.calibration_dir).glob("*/.search-*/attempt-01/engine*")):
            return False
        calls["after_build"] += 1
        return calls["after_build"] > 2  # the check after the build, the first batch, then stop

    with pytest.raises(Cancelled, match=r"INT8 search \(evaluation\): cancelled"):
        building.build(demo_config, precision="int8", cancel=when_inside_search(demo_config, inside_evaluation))
    assert calls["after_build"] == 3
    assert searches(demo_config) == []


def test_without_a_stop_the_build_is_unchanged(demo_config):
    report = building.build(demo_config, precision="int8", cancel=lambda: False)
    assert report.promoted and searches(demo_config) == []


def test_cancel_helpers():
    check(None, "x")
    check(lambda: False, "x")
    with pytest.raises(Cancelled, match="x: cancelled") as raised:
        check(lambda: True, "x")
    assert raised.value.exit_code == 0
    heard: List[str] = []
    listen = cancelling(lambda label, *rest: heard.append(label), lambda: len(heard) >= 1)
    assert listen is not None
    listen("a", 1, 2, "")
    with pytest.raises(Cancelled, match="b: cancelled"):
        listen("b", 2, 2, "")
    assert heard == ["a"]
    assert cancelling(None, None) is None


def running_in_group(group: int) -> List[int]:
    """Processes of a process group that still run (a killed orphan may stay a zombie a moment)."""
    import psutil

    deadline = time.monotonic() + 5.0
    while True:
        found = []
        for proc in psutil.process_iter(["pid", "status"]):
            try:
                if os.getpgid(proc.pid) == group and proc.info["status"] != psutil.STATUS_ZOMBIE:
                    found.append(proc.pid)
            except (ProcessLookupError, psutil.Error):
                continue
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_a_build_child_is_killed_with_its_process_group_once_cancelled():
    """What the TensorRT backend's build runs on (run_isolated): a child and its own child, both stopped."""
    script = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
    script += "print('started', flush=True); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, start_new_session=True)
    assert child.stdout is not None and child.stdout.readline().strip() == b"started"
    stop_at = time.monotonic() + 0.5
    reason = wait_unless(child, lambda: "cancelled" if time.monotonic() > stop_at else None, poll_s=0.05)
    assert reason == "cancelled" and child.returncode is not None
    assert running_in_group(child.pid) == []  # the grandchild went with it
    finished = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    assert wait_unless(finished, lambda: None, poll_s=0.01) is None and finished.returncode == 0


def test_a_scope_hands_its_cancel_check_to_builds_on_its_thread(demo_config):
    assert ambient() is None
    with scope(lambda: True):
        assert ambient() is not None
        with pytest.raises(Cancelled, match="the fp32 build: cancelled"):
            building.build(demo_config, precision="fp32")
    assert ambient() is None
