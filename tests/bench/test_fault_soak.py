"""The fault soak's pure parts: gaps inside and outside fault windows, message accounting, the
wall clock shift a running daemon sees."""

from __future__ import annotations

import subprocess
import sys

from benchmarks.fault_soak import accounting, gaps


def test_a_gap_touching_a_fault_window_is_that_fault_s_and_the_rest_are_outside():
    times = [0.0, 0.04, 0.08, 1.0, 1.04, 3.0, 3.04, 3.5]
    windows = [("disk_full", 0.9, 2.0), ("clock_jump", 2.9, 2.95)]
    # 0.08 -> 1.0 touches disk_full; 1.04 -> 3.0 touches both, counted as the first; 3.04 -> 3.5 is outside
    assert gaps(times, windows, 400.0) == {
        "outside": 460.0,
        "outside_at_s": 3.0,
        "outside_over_bound": 1,
        "disk_full": 1960.0,
    }
    assert gaps(times, [], 100.0) == {"outside": 1960.0, "outside_at_s": 1.0, "outside_over_bound": 3}


def test_missing_seqs_beyond_dropped_and_unsent_wills_are_uncounted():
    received = set(range(10, 110)) - {20, 21, 50}  # seq 10: the start-up will, published by the broker
    books = accounting(received, 2, 1, {10})
    assert books == {"numbered": 100, "received": 97, "missing": 3, "dropped": 2, "wills_unsent": 0, "uncounted": 1}
    assert accounting(received, 2, 2, {10})["uncounted"] == 0  # a second will, never published, explains it
    unseen = accounting(received - {10}, 2, 1, set())  # the start-up will (seq 10) was never published
    assert unseen["numbered"] == 100 and unseen["missing"] == 4 and unseen["wills_unsent"] == 1
    assert unseen["uncounted"] == 1
    assert accounting(set(), 0, 0, set())["numbered"] == 0


def test_the_shifted_clock_follows_its_offset_file_while_the_process_runs(tmp_path):
    offset = tmp_path / "offset"
    offset.write_text("86400\n")
    script = (
        "import sys, time; from pathlib import Path; from benchmarks.shifted_clock import install\n"
        "install(Path(sys.argv[1])); a = time.time() - time.monotonic()\n"
        "Path(sys.argv[1]).write_text('-3600'); time.sleep(0.5); b = time.time() - time.monotonic()\n"
        "print(round((a - b) / 3600.0, 2), abs(round(time.time_ns() / 1e9 - time.time())))"
    )
    out = subprocess.run([sys.executable, "-c", script, str(offset)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["25.0", "0"]  # a jump of 25 hours back, time_ns shifted alike
