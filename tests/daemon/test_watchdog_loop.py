"""WATCHDOG=1 follows inference progress: a hung inference loop stops the keep-alives."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Sequence

import numpy as np

from agent.backends.base import Arrays, Engine
from agent.daemon.finishing import Sink
from agent.daemon.loop import InferenceLoop
from agent.daemon.sdnotify import Notifier, WatchdogPacer
from agent.daemon.swap import Handoff
from agent.model.pipeline import Pipeline
from agent.sources.files import VideoFileSource
from agent.sources.latest import LatestFrameCapture


class HangingEngine(Engine):
    """The real engine until ``hang`` is set; then infer() blocks (a wedged GPU, a deadlocked driver)."""

    def __init__(self, engine: Engine, hang: threading.Event, release: threading.Event) -> None:
        self.engine, self.hang, self.release = engine, hang, release
        self.inputs, self.outputs, self.info = engine.inputs, engine.outputs, engine.info

    def infer(self, feeds: Mapping[str, np.ndarray]) -> Arrays:
        if self.hang.is_set():
            self.release.wait(30.0)
        return self.engine.infer(feeds)


def keepalives_follow_a_hang(
    pipeline: Pipeline,
    report: Dict[str, Any],
    demo_dir: Path,
    notify_socket: Any,
    hang: threading.Event,
    release: threading.Event,
    what: str,
    while_stuck: Callable[[InferenceLoop, LatestFrameCapture, int], None],
    sinks: Sequence[Sink] = (),
) -> None:
    """A loop over the sample stream feeds WATCHDOG=1; once ``hang`` is set (something blocks until
    ``release``) the keep-alives stop and ``while_stuck(loop, capture, inferences then)`` holds; they
    resume after the release."""
    notifier = Notifier({"NOTIFY_SOCKET": notify_socket.address})
    pacer = WatchdogPacer(notifier.watchdog, interval_s=0.2)
    capture = LatestFrameCapture(
        lambda: VideoFileSource(str(demo_dir / "stream.avi"), loop=True, fps=100), 5.0, (0.1, 1.0)
    )
    loop = InferenceLoop(capture, pipeline, report, Handoff(), pacer.progress, sinks=sinks)
    capture.start()
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        healthy = len(notify_socket.collect(1.0))
        assert healthy >= 7, "a serving loop keeps systemd's watchdog fed (every 0.1 s)"
        hang.set()
        notify_socket.collect(0.3)  # at most one keep-alive from the inference in flight (or the backlog filling)
        stuck_from, inferred = len(notify_socket.messages), loop.inferences
        notify_socket.collect(1.0)
        assert len(notify_socket.messages) == stuck_from, f"no WATCHDOG=1 while {what}"
        while_stuck(loop, capture, inferred)
        hang.clear()
        release.set()
        notify_socket.collect(0.5)
        assert len(notify_socket.messages) > stuck_from, "keep-alives resume with progress"
    finally:
        release.set()
        loop.stop_event.set()
        capture.stop()
        thread.join(5.0)


def test_a_hung_inference_loop_stops_watchdog(demo_config, demo_dir, make_pipeline, notify_socket):
    pipeline, report = make_pipeline(demo_config)
    hang, release = threading.Event(), threading.Event()
    pipeline.engine = HangingEngine(pipeline.engine, hang, release)

    def capture_alive(loop: InferenceLoop, capture: LatestFrameCapture, inferred: int) -> None:
        assert capture.stats()["frames_read"] > loop.inferences  # capture itself is alive: the loop is what hangs

    keepalives_follow_a_hang(
        pipeline, report, demo_dir, notify_socket, hang, release, "inference is stuck", capture_alive
    )


def test_a_camera_outage_is_not_a_hang(demo_config, make_pipeline, notify_socket):
    """No frames while the capture thread re-opens the source: the loop is idle, not stuck."""
    from tests.daemon.test_capture import StallingSource

    pipeline, report = make_pipeline(demo_config)
    never = threading.Event()
    notifier = Notifier({"NOTIFY_SOCKET": notify_socket.address})
    pacer = WatchdogPacer(notifier.watchdog, interval_s=0.2)
    capture = LatestFrameCapture(lambda: StallingSource(0, never), 0.3, (0.1, 0.2))
    loop = InferenceLoop(capture, pipeline, report, Handoff(), pacer.progress)
    capture.start()
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        notify_socket.collect(1.5)
        assert loop.inferences == 0 and capture.stats()["stalls"] >= 2
        assert len(notify_socket.lines("WATCHDOG")) >= 4  # one per idle wait (0.25 s)
        capture.stop()  # the capture thread is gone: keep-alives stop
        notify_socket.collect(0.5)
        count = len(notify_socket.messages)
        notify_socket.collect(1.0)
        assert len(notify_socket.messages) == count
    finally:
        never.set()
        loop.stop_event.set()
        capture.stop()
        thread.join(5.0)


def test_a_hung_result_sink_stops_watchdog(demo_config, demo_dir, make_pipeline, notify_socket):
    """Results are finished off the inference thread; a sink that never returns still stops the
    keep-alives once the finisher's backlog is full, instead of inference going on unseen."""
    pipeline, report = make_pipeline(demo_config)
    hang, release = threading.Event(), threading.Event()

    def sink(batch: object) -> None:
        if hang.is_set():
            release.wait(30.0)

    def no_inference(loop: InferenceLoop, capture: LatestFrameCapture, inferred: int) -> None:
        assert loop.inferences == inferred

    keepalives_follow_a_hang(
        pipeline, report, demo_dir, notify_socket, hang, release, "results cannot be delivered", no_inference, [sink]
    )
