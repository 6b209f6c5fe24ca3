"""Case 10 of issue 15: `calibrate frames=100000` on a 200-frame source answers ok and says how many
frames it got (the daemon's calibrate handler, the real collection from the demo stream)."""

from __future__ import annotations

from typing import Optional

from agent.daemon import handlers
from agent.daemon.supervisor import Daemon
from calibration.workflow import shortfall_note


def no_progress(fraction: Optional[float], message: str) -> None:
    """A command's progress callback that drops what it gets."""


def test_calibrate_asking_for_more_frames_than_the_source_has_says_how_many_it_got(demo_cfg):
    daemon = Daemon(demo_cfg, None, environ={})
    answer = handlers.calibrate(daemon, {"source": None, "frames": 100000}, no_progress)
    assert 0 < answer["frames"] < 100000
    note = answer["notes"][0]
    assert note.startswith(f"asked for 100000 calibration frames, got {answer['frames']}: the source ended after ")


def test_no_note_when_the_frames_asked_for_were_kept():
    manifest = {"settings": {"frames_requested": 2}, "frames": [{}, {}], "seen": 5, "skipped": {}}
    assert shortfall_note(manifest) == []
    short = dict(manifest, frames=[{}], skipped={"too_close": 1, "near_duplicates": 3})
    assert shortfall_note(short) == [
        "asked for 2 calibration frames, got 1: the source ended after 5 frame(s) (1 too close in time and "
        "3 near-duplicate(s) skipped)"
    ]
