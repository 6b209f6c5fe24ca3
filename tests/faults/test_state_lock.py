"""Case 7 of issue 15: two daemons on one state directory. The holder is a real second process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agent.daemon.statelock import lock_state_dir
from agent.util.errors import InputError
from tests.faults.daemon_proc import REPO

HOLDER = "import sys, time; from agent.daemon.statelock import lock_state_dir; h = lock_state_dir(sys.argv[1]); "
HOLDER += "print('held', flush=True); time.sleep(60)"


def test_a_second_daemon_is_refused_naming_the_holders_pid_and_the_lock_dies_with_it(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=str(REPO)
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match=f"in use by another edge-agent daemon \\(PID {holder.pid},"):
            lock_state_dir(str(tmp_path))
    finally:
        holder.kill()
        holder.wait(10)
    lock_state_dir(str(tmp_path)).close()  # the kernel released the killed holder's lock
