"""The batcher: its pure decisions, then batches over real captures (the demo stream, a stalled
source, a source that is not video)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import List

from agent.daemon.batcher import Batcher, batch_is_due, pick
from agent.sources.files import VideoFileSource
from agent.sources.latest import LatestFrameCapture
from tests.daemon.test_capture import StallingSource


def test_pick_takes_ready_sources_in_turn_up_to_the_batch():
    assert pick([True, True, True], 0, 3) == [0, 1, 2]
    assert pick([True, False, True], 0, 3) == [0, 2]  # a source with nothing new is left out
    assert pick([True, True, True, True], 2, 2) == [2, 3]  # more sources than the batch: from the turn on
    assert pick([True, True, True, True], 3, 2) == [3, 0]
    assert pick([False, False], 1, 4) == [] and pick([], 0, 4) == []


def test_pick_is_fair_when_the_batch_is_smaller_than_the_sources():
    turns: Counter = Counter()
    start = 0
    for _ in range(30):
        chosen = pick([True] * 5, start, 2)
        turns.update(chosen)
        start = (chosen[-1] + 1) % 5
    assert set(turns.values()) == {12}  # 30 batches of 2 over 5 sources: 12 turns each


def test_a_batch_is_due_when_full_or_after_the_wait():
    assert not batch_is_due(0, 3, 3, 10.0, 0.01)  # nothing to infer
    assert batch_is_due(3, 3, 3, 0.0, 0.01)  # every serving source has a frame
    assert batch_is_due(2, 2, 4, 0.0, 0.01)  # fewer serving sources than the batch: all of them
    assert not batch_is_due(2, 3, 3, 0.005, 0.01)  # waiting for the third
    assert batch_is_due(2, 3, 3, 0.01, 0.01)  # waited max_wait: the batch forms without it
    assert batch_is_due(1, 5, 2, 0.0, 0.0)  # max_wait 0: never wait


def video_capture(demo_dir: Path, source_id: str, fps: float = 100.0) -> LatestFrameCapture:
    return LatestFrameCapture(
        lambda: VideoFileSource(str(demo_dir / "stream.avi"), loop=True, fps=fps),
        2.0,
        (0.05, 0.5),
        source_id=source_id,
    )


def batches_for(batcher: Batcher, seconds: float, batch: int) -> List[List[str]]:
    out: List[List[str]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        taken = batcher.next_batch(batch, 0.25)
        out.append([frame.source_id for frame, _ in taken])
    return out


def test_batches_hold_one_frame_per_source_and_a_stalled_one_never_holds_them_up(demo_dir):
    never = threading.Event()
    stalled = LatestFrameCapture(lambda: StallingSource(0, never), 0.3, (0.05, 0.2), source_id="stuck")
    captures = [video_capture(demo_dir, "a"), video_capture(demo_dir, "b"), stalled]
    batcher = Batcher(captures, max_wait_s=0.02)
    for capture in captures:
        capture.start()
    try:
        got = batches_for(batcher, 1.5, 3)
    finally:
        never.set()
        for capture in captures:
            capture.stop()
    full = [b for b in got if b]
    assert len(full) > 30, got  # ~100 frames/s per source: the stalled one does not slow the batches
    assert all(len(set(b)) == len(b) and "stuck" not in b for b in full)  # one frame per source, none from it
    both = sum(1 for b in full if sorted(b) == ["a", "b"])
    assert both > len(full) // 2, full  # mostly both live sources in each batch
    assert stalled.stats()["stalls"] >= 2  # meanwhile it is re-opened on its own threads


def test_a_frame_carries_its_source_id_and_wall_time(demo_dir):
    capture = video_capture(demo_dir, "door")
    batcher = Batcher([capture], max_wait_s=0.0)
    capture.start()
    try:
        taken = batcher.next_batch(4, 5.0)
    finally:
        capture.stop()
    assert len(taken) == 1  # one source: a batch of one, without waiting for more
    frame = taken[0][0]
    assert frame.source_id == "door" and abs(frame.wall_time - time.time()) < 5.0


def test_no_batch_when_no_source_has_a_frame_within_the_timeout(demo_dir):
    never = threading.Event()
    stalled = LatestFrameCapture(lambda: StallingSource(0, never), 5.0, (0.05, 0.2), source_id="stuck")
    batcher = Batcher([stalled], max_wait_s=0.01)
    stalled.start()
    try:
        started = time.monotonic()
        assert batcher.next_batch(2, 0.3) == []
        assert 0.25 <= time.monotonic() - started < 2.0
    finally:
        never.set()
        stalled.stop()


def test_a_source_that_is_not_video_gives_up_and_the_others_go_on(demo_dir, tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("this is not a video\n")
    broken = LatestFrameCapture(
        lambda: VideoFileSource(str(fake), loop=True), 2.0, (0.02, 0.05), source_id="fake", max_failures=3
    )
    captures = [video_capture(demo_dir, "a"), broken]
    batcher = Batcher(captures, max_wait_s=0.05)
    for capture in captures:
        capture.start()
    try:
        assert broken.failed.wait(5.0), broken.stats()
        got = batches_for(batcher, 0.5, 2)
    finally:
        for capture in captures:
            capture.stop()
    stats = broken.stats()
    assert stats["failed"] and stats["reopens"] == 2 and "gave up after 3 attempts" in stats["last_error"]
    assert "OpenCV cannot open the video" in stats["last_error"]
    assert not broken.alive() and broken.done() and batcher.serving() == [captures[0]]
    assert sum(1 for b in got if b == ["a"]) > 10  # the live source is served without waiting for the dead one


def test_pull_captures_read_one_frame_ahead_of_the_batches(demo_dir):
    """Unpaced files: every frame of each source, in order, none dropped; each reader reads its next
    frame once its last was taken into a batch, and no further."""
    captures = [
        LatestFrameCapture(
            lambda: VideoFileSource(str(demo_dir / "stream.avi"), loop=True),
            2.0,
            (0.1, 1.0),
            source_id=f"f{i}",
            pull=True,
        )
        for i in range(3)
    ]
    batcher = Batcher(captures, max_wait_s=1.0)
    for capture in captures:
        capture.start()
    try:
        seen: List[List[int]] = []
        for _ in range(5):
            batch = batcher.next_batch(3, timeout=5.0)
            assert [f.source_id for f, _ in batch] == ["f0", "f1", "f2"]
            seen.append([f.index for f, _ in batch])
            deadline = time.monotonic() + 5.0
            while not all(c.ready() for c in captures) and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.05)  # a reader that did not wait for the next take would have read on by now
            assert [c.stats()["frames_read"] - c.stats()["frames_taken"] for c in captures] == [1, 1, 1]
        assert seen == [[k] * 3 for k in range(5)]
        assert sum(c.stats()["dropped"] for c in captures) == 0
    finally:
        for capture in captures:
            capture.stop()
