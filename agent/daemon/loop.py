"""The inference loop: one engine call after another, on its own thread, with the serving engine.

Three threads make the pipeline, as DeepStream's muxer, inference element and sinks do: the
prefetcher (agent.daemon.prefetch) forms the next batch from the sources while the engine runs the
current one; this loop takes it, runs the engine, and hands the outputs to the finisher
(agent.daemon.finishing), which decodes them and hands each batch's results to the sinks while the
engine runs the next. Frames arrive preprocessed by the capture threads (``prepare_for``) when
their input spec is the serving engine's, so capture, decoding and preprocessing overlap with
inference too.

Between two engine calls the loop (1) swaps in an engine a rebuild offered, (2) runs jobs that
need the serving engine (benchmark, accuracy check), then (3) takes the next batch. Every
inference, and every wait for a frame while the capture threads are alive (a camera outage is
handled there, by re-opening) and the prefetcher is not stuck, calls ``on_progress``: the systemd
watchdog is fed from there, so a loop stuck in an inference, a finisher stuck in a sink, or dead
capture threads stop the keep-alives. Engines are not thread-safe; only this thread touches the
serving one.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from typing import Any, Callable, Deque, Dict, Optional, Sequence, Tuple, Union

from agent.daemon.finishing import Finisher, Inferred, Sink
from agent.daemon.prefetch import Assembled, Prefetcher, refit
from agent.daemon.swap import Handoff
from agent.engines.identity import engine_label, served_precision
from agent.model.info import InputSpec
from agent.model.pipeline import Pipeline
from agent.model.preprocess import preprocess
from agent.sources.frames import Frame
from agent.sources.latest import LatestFrameCapture
from agent.util.stats import latency_stats, recent_rate

log = logging.getLogger(__name__)
Job = Callable[[Pipeline], None]
FPS_WINDOW_S = 5.0  # fps is the inference rate over the last few seconds
TAKE_TIMEOUT_S = 0.25  # how long the loop waits for a batch before it looks at jobs, swaps and stop again


class Stopping(Exception):
    """Raised by ``InferenceLoop.progress`` inside a job once the loop is told to stop."""


def prepare_for(pipeline: Callable[[], Optional[Pipeline]]) -> Callable[[Frame], Optional[Tuple[InputSpec, Any]]]:
    """A capture ``prepare`` hook: preprocess each frame on the capture thread for the serving engine's
    input (one sample and its letterbox)."""

    def prepare(frame: Frame) -> Optional[Tuple[InputSpec, Any]]:
        serving = pipeline()
        if serving is None:
            return None
        spec = serving.model.spec
        return spec, preprocess(frame.image, spec)

    return prepare


def identity_of(report: Dict[str, Any]) -> Dict[str, Any]:
    """What every result says of the engine that inferred it."""
    return {
        "engine": engine_label(report),
        "engine_id": report.get("cache_key"),
        "precision": served_precision(report),
    }


class InferenceLoop:
    def __init__(
        self,
        capture: Union[LatestFrameCapture, Sequence[LatestFrameCapture]],
        pipeline: Pipeline,
        report: Dict[str, Any],
        handoff: Handoff,
        on_progress: Callable[[], None],
        on_result: Optional[Callable[[Dict[str, Any]], None]] = None,
        on_swap: Optional[Callable[[Dict[str, Any]], None]] = None,
        max_frames: Optional[int] = None,
        observe: Optional[Callable[[Frame, Dict[str, Any]], None]] = None,
        sinks: Sequence[Sink] = (),
        max_wait_s: float = 0.0,
    ) -> None:
        self.pipeline = pipeline
        self.report = report
        self._identity = identity_of(report)
        self.captures = [capture] if isinstance(capture, LatestFrameCapture) else list(capture)
        # max_wait_s: batching.max_wait_ms; batches are formed for the serving engine's input
        self.prefetcher = Prefetcher(self.captures, max_wait_s, lambda: self.pipeline.model.spec)
        # sinks: called in order with each batch's results; a list the daemon may append to
        self.finisher = Finisher(sinks, observe, on_result)
        self.handoff = handoff
        self.on_progress = on_progress
        self.on_swap = on_swap
        self.max_frames = max_frames
        self.jobs: "queue.Queue[Job]" = queue.Queue()
        self.stop_event = threading.Event()
        self.first_inference = threading.Event()
        self.finished = threading.Event()
        self.inferences = 0  # frames inferred
        self.batches = 0  # engine calls
        self.last_end: Optional[float] = None
        self.max_gap_ms = 0.0  # longest time between two inferences since reset_max_gap()
        self.started = time.monotonic()
        self.error = ""
        self.stop_reason = ""
        self._latencies: Deque[float] = collections.deque(maxlen=512)
        self._ends: Deque[float] = collections.deque(maxlen=512)
        self._swap_from: Optional[Tuple[float, Dict[str, Any]]] = None

    def run(self) -> None:
        self.prefetcher.start()
        self.finisher.start()
        try:
            while not self.stop_event.is_set():
                self._maybe_swap()
                self._run_jobs()
                assembled = self.prefetcher.take(TAKE_TIMEOUT_S)
                if assembled is None:
                    if self.prefetcher.error:
                        self.error = self.prefetcher.error
                        break
                    if self.prefetcher.sources_done:
                        self._all_sources_done()
                        break
                    if self.prefetcher.healthy(time.monotonic()) and any(c.alive() for c in self.captures):
                        self.on_progress()  # idle, not stuck: the capture threads are re-opening sources
                    continue
                for part in refit(assembled, self.pipeline.model.spec):
                    self._infer(part)
                if self.finisher.error:
                    self.error = self.finisher.error
                    break
                if self.max_frames and self.inferences >= self.max_frames:
                    log.info("inference: %d frames done (--max-frames); stopping", self.inferences)
                    self.stop_reason = "max frames reached"
                    break
        except Exception as exc:  # reported; the daemon stops and systemd restarts it
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("inference loop failed")
        finally:
            self.prefetcher.stop()
            self.finisher.close()  # the results of every batch inferred reach the sinks
            self.error = self.error or self.finisher.error
            self.finished.set()

    def set_captures(self, captures: Sequence[LatestFrameCapture], max_wait_s: float) -> None:
        """Serve these captures, batched with this ``batching.max_wait_ms``, from the next batch on (a
        reload of the sources)."""
        self.captures = list(captures)
        self.prefetcher.set_captures(self.captures, max_wait_s)

    def _all_sources_done(self) -> None:
        failed = [c for c in self.captures if c.failed.is_set()]
        if failed:
            self.error = "every source stopped: " + "; ".join(f"{c.source_id}: {c.last_error}" for c in failed)
            log.error("inference: %s", self.error)
        else:
            log.info("inference: the source ended; stopping")
            self.stop_reason = "the source ended"

    def _infer(self, assembled: Assembled) -> None:
        """One engine call on a batch formed for the serving engine; its outputs go to the finisher."""
        started = time.monotonic()
        outputs = self.pipeline.engine.infer({assembled.spec.name: assembled.tensor})
        end = time.monotonic()
        frames = len(assembled.taken)
        self.finisher.put(Inferred(assembled, outputs, self.pipeline.decode, self._identity, started), self.stop_event)
        self.inferences += frames
        self.batches += 1
        self._latencies.append((end - started) * 1000.0)
        self._ends.extend([end] * frames)
        if self._swap_from is not None:
            self._finish_swap(end, frames)
        if self.last_end is not None:
            self.max_gap_ms = max(self.max_gap_ms, (end - self.last_end) * 1000.0)
        self.last_end = end
        if not self.first_inference.is_set():
            self.first_inference.set()
        self.on_progress()

    def reset_max_gap(self) -> None:
        """Start measuring the longest inference gap afresh (a rebuild starts)."""
        self.max_gap_ms = 0.0

    def _maybe_swap(self) -> None:
        candidate = self.handoff.take()
        if candidate is None:
            return
        pipeline, report = candidate
        old_pipeline, old_report = self.pipeline, self.report
        self.pipeline, self.report, self._identity = pipeline, report, identity_of(report)
        self._swap_from = (
            self.last_end if self.last_end is not None else time.monotonic(),
            {"from": engine_label(old_report), "to": engine_label(report)},
        )
        old_pipeline.engine.close()
        log.info("inference: swapped %s -> %s", engine_label(old_report), engine_label(report))

    def _finish_swap(self, end: float, frames: int) -> None:
        assert self._swap_from is not None
        last_old, info = self._swap_from
        self._swap_from = None
        gap_ms = (end - last_old) * 1000.0
        info = dict(
            info,
            gap_ms=round(gap_ms, 2),
            max_gap_before_ms=round(self.max_gap_ms, 2),
            inferences_before=self.inferences - frames,
        )
        self.handoff.done(info)
        if self.on_swap is not None:
            self.on_swap(info)

    def progress(self) -> None:
        """Progress of a job on this thread (each of its inferences): feeds the watchdog; raises
        Stopping once the loop is told to stop, so shutdown never waits for a whole benchmark."""
        self.on_progress()
        if self.stop_event.is_set():
            raise Stopping("the daemon is stopping")

    def _run_jobs(self) -> None:
        if self.jobs.empty():  # the usual case, checked without raising queue.Empty at every batch
            return
        while not self.stop_event.is_set():
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                return
            try:
                job(self.pipeline)
            except Stopping:
                log.info("inference: a job on the serving engine was cut short by the shutdown")
            except Exception:  # a failed benchmark or check must not stop inference
                log.exception("inference: a job on the serving engine failed")

    def stats(self) -> Dict[str, Any]:
        latency = latency_stats(self._latencies) if self._latencies else {}
        now = time.monotonic()
        return {
            "engine": engine_label(self.report),
            "inferences": self.inferences,
            "batches": self.batches,
            "fps": recent_rate(self._ends, now, FPS_WINDOW_S, self.started),
            "latency_ms_p50": latency.get("p50"),
            "latency_ms_p99": latency.get("p99"),
            "uptime_s": round(time.monotonic() - self.started, 1),
        }
