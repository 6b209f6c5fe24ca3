"""Latest-frame-wins capture over any Source, with stall detection and re-open with backoff.

A reader thread reads frames into a one-frame slot: a frame nobody took before the next one
arrived is dropped (counted), so inference always gets the newest frame. With ``pull`` (an
unpaced file: ``fps: null`` is "as fast as inference") the reader instead reads the next frame
only once this one was taken, so every frame is inferred and none is decoded just to be dropped. A supervisor thread
watches the reader: an open or read that has not returned within ``read_timeout_s`` (OpenCV's
read() can block forever on a dead RTSP stream) abandons that reader thread (it is a daemon
thread; if it ever returns it closes its source and exits) and starts a new one after a backoff
that doubles from ``backoff_s[0]`` up to ``backoff_s[1]`` and resets once frames flow again.

A source that can be opened but gives no frame (a file that is not decodable video, a folder of
unreadable images) fails the same way every time: with ``max_failures`` set, that many attempts in
a row without a frame end the capture (``failed``, with ``last_error``) instead of retrying forever.
Each capture serves one configured source (``source_id``); several run side by side, each with
its own threads, so one that stalls never holds up the others.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Callable, Deque, Dict, Optional, Sequence, Tuple

from agent.sources.frames import Frame, Source
from agent.util.stats import latency_stats, recent_rate
from agent.util.wakeup import Wakeup

log = logging.getLogger(__name__)
FPS_WINDOW_S = 5.0  # a source's fps is its read rate over the last few seconds


class _Reader:
    """One reader thread's shared state."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.busy_since: Optional[float] = None  # set while open() or read() is in progress
        self.abandoned = False
        self.frames = 0
        self.outcome = ""
        self.done = threading.Event()


class LatestFrameCapture:
    """Frames from ``open_source()`` on their own thread; ``take()`` returns the newest unseen one."""

    def __init__(
        self,
        open_source: Callable[[], Source],
        read_timeout_s: float,
        backoff_s: Tuple[float, float],
        finite: bool = False,
        clock: Callable[[], float] = time.monotonic,
        prepare: Optional[Callable[[Frame], Any]] = None,
        source_id: str = "",
        max_failures: Optional[int] = None,
        on_frame: Optional[Callable[[], None]] = None,
        pull: bool = False,
    ) -> None:
        self.open_source = open_source
        self.pull = pull  # read the next frame once this one was taken (never drop)
        self._taken = Wakeup()  # pull: set when the slot's frame was taken
        self.source_id = source_id
        self.max_failures = max_failures  # attempts in a row without a frame before giving up; None: never
        self.on_frame = on_frame  # called after each new frame (a batcher waiting on several captures)
        self.prepare = prepare  # e.g. preprocessing, run on the reader thread for each frame
        self.read_timeout_s = read_timeout_s
        self.backoff_s = backoff_s
        self.finite = finite  # a stream that may end (a file without looping): None means the end, not a failure
        self.clock = clock
        self._cond = threading.Condition()
        self._slot: Optional[Tuple[Frame, Any]] = None
        self._stop = threading.Event()
        self.ended = threading.Event()
        self.failed = threading.Event()  # gave up after max_failures attempts without a frame
        self._supervisor: Optional[threading.Thread] = None
        self._reader: Optional[_Reader] = None
        self.frames_read = 0
        self.frames_taken = 0
        self.dropped = 0
        self.reopens = 0
        self.stalls = 0
        self.last_error = ""
        self.prepare_errors = 0
        self._ages_ms: Deque[float] = collections.deque(maxlen=256)
        self._reads: Deque[float] = collections.deque(maxlen=512)
        self.started = clock()

    def start(self) -> None:
        self._supervisor = threading.Thread(target=self._supervise, name="capture-supervisor", daemon=True)
        self._supervisor.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop reading; a reader blocked in read() is left behind (it is a daemon thread)."""
        self._stop.set()
        self._taken.set()
        with self._cond:
            self._cond.notify_all()
        if self._supervisor is not None:
            self._supervisor.join(timeout)

    def alive(self) -> bool:
        """Whether the supervisor still runs (reading, or re-opening the source after a failure)."""
        return self._supervisor is not None and self._supervisor.is_alive()

    def ready(self) -> bool:
        """Whether a frame nobody took yet is waiting."""
        return self._slot is not None

    def done(self) -> bool:
        """Whether no frame will come any more (the stream ended, or the capture gave up)."""
        return self.ended.is_set() or self.failed.is_set()

    def take(self, timeout: float) -> Optional[Frame]:
        """The newest frame not taken before, waiting up to ``timeout``; None if none came (or the stream ended)."""
        taken = self.take_prepared(timeout)
        return taken[0] if taken is not None else None

    def take_prepared(self, timeout: float) -> Optional[Tuple[Frame, Any]]:
        """Like take(), with what ``prepare`` made of the frame (None without ``prepare``)."""
        deadline = self.clock() + timeout
        with self._cond:
            while self._slot is None and not self._stop.is_set() and not self.done():
                left = deadline - self.clock()
                if left <= 0:
                    return None
                self._cond.wait(left)
            taken, self._slot = self._slot, None
        if self.pull:
            self._taken.set()  # the reader waits for the slot to empty
        if taken is not None:
            self.frames_taken += 1
            self._ages_ms.append((self.clock() - taken[0].timestamp) * 1000.0)
        return taken

    def stats(self) -> Dict[str, Any]:
        ages = latency_stats(self._ages_ms) if self._ages_ms else {}
        now = self.clock()
        return {
            "id": self.source_id,
            "fps": recent_rate(self._reads, now, FPS_WINDOW_S, self.started),
            "frames_read": self.frames_read,
            "frames_taken": self.frames_taken,
            "dropped": self.dropped,
            "reopens": self.reopens,
            "stalls": self.stalls,
            "frame_age_ms_p50": ages.get("p50"),
            "frame_age_ms_p99": ages.get("p99"),
            "frame_age_ms_max": ages.get("max"),
            "last_error": self.last_error or None,
            "ended": self.ended.is_set(),
            "failed": self.failed.is_set(),
        }

    def ages_ms(self) -> Sequence[float]:
        """The recent frame ages (read to taken), in ms."""
        return list(self._ages_ms)

    def _offer(self, frame: Frame) -> None:
        frame.source_id = self.source_id
        frame.wall_time = time.time()
        prepared = None
        if self.prepare is not None:
            try:
                prepared = self.prepare(frame)
            except Exception as exc:  # the consumer prepares the frame itself then, and sees the error
                self.prepare_errors += 1
                if self.prepare_errors == 1:
                    log.warning("capture: preparing a frame failed (%s); the inference thread will do it", exc)
        with self._cond:
            if self._slot is not None:
                self.dropped += 1
            self._slot = (frame, prepared)
            self.frames_read += 1
            self._reads.append(self.clock())
            self._cond.notify_all()
        if self.on_frame is not None:
            self.on_frame()

    def _supervise(self) -> None:
        delay = self.backoff_s[0]
        generation = 0
        fruitless = 0  # attempts in a row that gave no frame
        while not self._stop.is_set():
            generation += 1
            reader = _Reader(generation)
            self._reader = reader
            threading.Thread(
                target=self._read_loop, args=(reader,), name=f"capture-reader-{generation}", daemon=True
            ).start()
            poll = min(0.1, self.read_timeout_s / 4.0)
            while not self._stop.is_set() and not reader.done.wait(poll):
                since = reader.busy_since
                if since is not None and self.clock() - since > self.read_timeout_s:
                    reader.abandoned = True
                    reader.outcome = f"no frame within source.read_timeout_s={self.read_timeout_s:g} s"
                    self.stalls += 1
                    break
            if self._stop.is_set():
                reader.abandoned = True
                return
            if reader.outcome == "ended":
                log.info("capture %s: the source ended after %d frames", self.source_id, self.frames_read)
                self.ended.set()
                with self._cond:
                    self._cond.notify_all()
                return
            if reader.frames:
                delay = self.backoff_s[0]
                fruitless = 0
            elif not reader.abandoned:  # a stall is not a failure to decode: it does not count
                fruitless += 1
            self.last_error = reader.outcome
            if self.max_failures is not None and fruitless >= self.max_failures:
                self.last_error = f"{reader.outcome}; gave up after {fruitless} attempts without a frame"
                log.error("capture %s: %s", self.source_id or "source", self.last_error)
                self.failed.set()
                with self._cond:
                    self._cond.notify_all()
                if self.on_frame is not None:
                    self.on_frame()  # a batcher waiting on this capture sees it is done
                return
            log.warning("capture %s: %s; re-opening the source in %.1f s", self.source_id, reader.outcome, delay)
            if self._stop.wait(delay):
                return
            self.reopens += 1
            delay = min(max(delay * 2.0, self.backoff_s[0]), self.backoff_s[1])

    def _wait_taken(self, reader: _Reader) -> bool:
        """Pull mode: wait until the frame just offered was taken; False once the capture stops or gives
        up on this reader."""
        while not self._stop.is_set() and not reader.abandoned:
            if self._taken.wait(0.1) and self._slot is None:
                return True
        return False

    def _read_loop(self, reader: _Reader) -> None:
        source: Optional[Source] = None
        try:
            reader.busy_since = self.clock()
            source = self.open_source()
            reader.busy_since = None
            while not self._stop.is_set() and not reader.abandoned:
                reader.busy_since = self.clock()
                frame = source.read()
                reader.busy_since = None
                if reader.abandoned:
                    break
                if frame is None:
                    reader.outcome = "ended" if self.finite else "the source returned no frame"
                    break
                reader.frames += 1
                self._offer(frame)
                if self.pull and not self._wait_taken(reader):
                    break
        except Exception as exc:  # a camera or file error: reported, then re-opened by the supervisor
            reader.outcome = f"source error: {exc}"
        finally:
            reader.busy_since = None
            if source is not None:
                try:
                    source.close()
                except Exception as exc:  # closing a broken device must not kill the thread silently
                    log.warning("capture: closing the source failed: %s", exc)
            reader.done.set()


def combined_stats(captures: Sequence[LatestFrameCapture]) -> Dict[str, Any]:
    """The captures' stats together (the telemetry's ``capture`` block): counts summed, frame ages
    over all sources, the latest error of any, ended once every source ended."""
    each = [c.stats() for c in captures]
    ages = [a for c in captures for a in c.ages_ms()]
    summary = latency_stats(ages) if ages else {}
    fps = [s["fps"] for s in each if s["fps"] is not None]
    counts = ("frames_read", "frames_taken", "dropped", "reopens", "stalls")
    return {
        **{key: sum(s[key] for s in each) for key in counts},
        "fps": round(sum(fps), 2) if fps else None,
        "frame_age_ms_p50": summary.get("p50"),
        "frame_age_ms_p99": summary.get("p99"),
        "frame_age_ms_max": summary.get("max"),
        "last_error": next((s["last_error"] for s in each if s["last_error"]), None),
        "ended": bool(each) and all(s["ended"] for s in each),
    }
