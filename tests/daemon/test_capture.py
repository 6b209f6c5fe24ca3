"""Latest-frame capture over real sources: freshness, drops, stalls re-opened, failures retried."""

from __future__ import annotations

import threading
import time
from typing import List, Optional

import numpy as np

from agent.sources.files import VideoFileSource
from agent.sources.frames import Frame, Source
from agent.sources.latest import LatestFrameCapture
from agent.util.errors import InputError


class StallingSource(Source):
    """A camera that delivers ``frames`` frames, then blocks in read() forever (a dead RTSP stream)."""

    def __init__(self, frames: int, released: threading.Event) -> None:
        self.uri = "stalling"
        self.left = frames
        self.released = released
        self.closed = False

    def read(self) -> Optional[Frame]:
        if self.left == 0:
            self.released.wait()  # never set during the test: read() does not return
            return None
        self.left -= 1
        return Frame(np.zeros((8, 8, 3), np.uint8), 0, time.monotonic(), self.uri)

    def close(self) -> None:
        self.closed = True


def take_n(capture: LatestFrameCapture, n: int, timeout: float) -> List[Frame]:
    frames: List[Frame] = []
    end = time.monotonic() + timeout
    while len(frames) < n and time.monotonic() < end:
        frame = capture.take(0.1)
        if frame is not None:
            frames.append(frame)
    return frames


def test_a_stalled_read_is_abandoned_and_the_source_reopened(demo_dir):
    never = threading.Event()
    opened: List[Source] = []

    def open_source() -> Source:
        source = (
            StallingSource(3, never)
            if not opened
            else VideoFileSource(str(demo_dir / "stream.avi"), loop=True, fps=100)
        )
        opened.append(source)
        return source

    capture = LatestFrameCapture(open_source, read_timeout_s=0.3, backoff_s=(0.05, 1.0))
    capture.start()
    try:
        started = time.monotonic()
        frames = take_n(capture, 13, timeout=5.0)
        assert len(frames) == 13, capture.stats()
        assert time.monotonic() - started < 3.0
        assert any(f.origin.endswith("stream.avi") for f in frames)
        stats = capture.stats()
        assert stats["stalls"] == 1 and stats["reopens"] == 1
        assert "read_timeout_s=0.3" in stats["last_error"]
        assert len(opened) == 2 and isinstance(opened[1], VideoFileSource)
    finally:
        capture.stop()
        never.set()


def test_latest_frame_wins_and_drops_are_counted(demo_dir):
    capture = LatestFrameCapture(
        lambda: VideoFileSource(str(demo_dir / "stream.avi"), loop=True, fps=200), 2.0, (0.1, 1.0)
    )
    capture.start()
    try:
        frames = []
        for _ in range(5):
            time.sleep(0.1)  # a slow consumer: ~20 frames arrive per take
            frame = capture.take(1.0)
            assert frame is not None
            frames.append(frame)
        stats = capture.stats()
    finally:
        capture.stop()
    indexes = [f.index for f in frames]
    assert all(b - a > 5 for a, b in zip(indexes, indexes[1:])), indexes  # each take skips stale frames
    assert stats["dropped"] >= 5 * 10
    assert stats["frames_read"] - stats["frames_taken"] - stats["dropped"] in (0, 1)  # one may wait in the slot
    assert stats["frame_age_ms_max"] < 20.0  # the newest frame is at most one frame period old


def test_a_finite_source_ends_cleanly(demo_dir):
    capture = LatestFrameCapture(
        lambda: VideoFileSource(str(demo_dir / "stream.avi"), loop=False), 2.0, (0.1, 1.0), finite=True
    )
    capture.start()
    try:
        assert capture.ended.wait(10.0)
        taken = 0
        while capture.take(0.05) is not None:
            taken += 1
        assert capture.take(0.05) is None
        assert capture.stats()["frames_read"] == 200
        assert capture.stats()["reopens"] == 0
    finally:
        capture.stop()


def test_pull_mode_reads_every_frame_of_an_unpaced_file_and_drops_none(demo_dir):
    """fps: null on a file means "as fast as inference": a slow consumer still gets frames 0, 1, 2, ..."""
    capture = LatestFrameCapture(
        lambda: VideoFileSource(str(demo_dir / "stream.avi"), loop=False),
        2.0,
        (0.1, 1.0),
        finite=True,
        pull=True,
    )
    capture.start()
    try:
        indexes = []
        for _ in range(20):
            time.sleep(0.01)  # slower than decoding: a latest-frame capture would skip frames here
            frame = capture.take(1.0)
            assert frame is not None
            indexes.append(frame.index)
        stats = capture.stats()
        assert indexes == list(range(20))
        assert stats["dropped"] == 0 and stats["frames_read"] - stats["frames_taken"] in (0, 1)
        while capture.take(1.0) is not None:  # the rest of the file, then the end
            pass
        assert capture.ended.is_set() and capture.stats()["frames_taken"] == 200
    finally:
        capture.stop()


def test_pull_mode_stops_while_waiting_for_a_take(demo_dir):
    capture = LatestFrameCapture(
        lambda: VideoFileSource(str(demo_dir / "stream.avi"), loop=True), 2.0, (0.1, 1.0), pull=True
    )
    capture.start()
    assert capture.take(2.0) is not None
    time.sleep(0.2)  # the reader has the next frame in the slot and waits
    assert capture.stats()["frames_read"] == 2
    capture.stop(timeout=2.0)
    assert not capture.alive()


def test_open_failures_are_retried_with_growing_backoff(demo_dir):
    attempts: List[float] = []

    def open_source() -> Source:
        attempts.append(time.monotonic())
        if len(attempts) <= 3:
            raise InputError("source.uri: cannot open V4L2 camera /dev/video9")
        return VideoFileSource(str(demo_dir / "stream.avi"), loop=True, fps=50)

    capture = LatestFrameCapture(open_source, 1.0, (0.1, 0.25))
    capture.start()
    try:
        assert take_n(capture, 1, timeout=5.0)
    finally:
        capture.stop()
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert len(gaps) == 3
    assert 0.09 <= gaps[0] < 0.2 and 0.19 <= gaps[1] < 0.35 and 0.24 <= gaps[2] < 0.4  # 0.1, 0.2, then capped at 0.25
    assert capture.stats()["reopens"] == 3


def test_stop_returns_even_while_a_read_is_blocked():
    never = threading.Event()
    capture = LatestFrameCapture(lambda: StallingSource(0, never), read_timeout_s=60.0, backoff_s=(1.0, 1.0))
    capture.start()
    time.sleep(0.2)
    started = time.monotonic()
    capture.stop(timeout=2.0)
    assert time.monotonic() - started < 1.0
    assert capture.take(0.1) is None
    never.set()
