"""Case 7's remainder in issue 15: sequence numbers unique even across a restored backup. A state
directory is copied (the backup), the daemon's numbering goes on, then the old copy is put back."""

from __future__ import annotations

import shutil
import time

from agent.mqtt.messages import SequenceFile


def test_numbers_after_restoring_an_old_state_dir_are_above_every_number_handed_out(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    first = SequenceFile(state / "mqtt-seq", block=10)
    before_backup = [first.next() for _ in range(5)]
    shutil.copytree(state, tmp_path / "backup")  # holds a reservation of 10 numbers
    after_backup = [first.next() for _ in range(500)]  # many blocks past what the backup holds
    time.sleep(0.05)  # the restore comes later (505 messages in 50 ms: far under a million a second)
    shutil.rmtree(state)
    shutil.copytree(tmp_path / "backup", state)
    restored = SequenceFile(state / "mqtt-seq", block=10)
    again = [restored.next() for _ in range(5)]
    assert min(again) > max(before_backup + after_backup)
    assert again == sorted(again) and len(set(again)) == 5


def test_a_restart_without_a_restore_goes_on_from_the_file_when_it_is_ahead_of_the_clock(tmp_path):
    path = tmp_path / "mqtt-seq"
    path.write_text("5000000000000000\n")  # ahead of the clock (e.g. a clock set back before NTP syncs)
    seq = SequenceFile(path, block=10, clock=lambda: 1_800_000_000.0)
    assert seq.next() == 5_000_000_000_000_000
    assert SequenceFile(tmp_path / "new", clock=lambda: 1_800_000_000.0).next() == 1_800_000_000_000_000
