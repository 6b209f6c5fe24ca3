"""The inference loop: the newest frame of each source in, one batched engine call, results out
per source, one engine at a time, on its own thread.

Frames arrive preprocessed by the capture threads (``prepare_for``) when their input spec is the
serving engine's, so capture, decoding and preprocessing overlap with inference. The batcher
(agent.daemon.batcher) forms each batch, up to the serving engine's batch; a short batch is
zero-padded as Pipeline does, and each sink gets the batch's frames with their results (one call
per batch; each result names its source).

Between two inferences the loop (1) swaps in an engine a rebuild offered, (2) runs jobs that
need the serving engine (benchmark, accuracy check), then (3) takes the next batch. Every
inference, and every wait for a frame while the capture thread is alive (a camera outage is
handled there, by re-opening), calls ``on_progress``: the systemd watchdog is fed from there, so
a loop stuck in an inference (or a dead capture thread) stops the keep-alives. Engines are not
thread-safe; only this thread touches the serving one.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from agent.daemon.batcher import Batcher, Taken
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
# Gets each batch's frames with their results, in order (MQTT results and snapshots; per_result: --json).
Sink = Callable[[Sequence[Tuple[Frame, Dict[str, Any]]]], None]
FPS_WINDOW_S = 5.0  # fps is the inference rate over the last few seconds


def per_result(handle: Callable[[Dict[str, Any]], None]) -> Sink:
    """A sink calling ``handle`` with each result of the batch in turn."""

    def sink(batch: Sequence[Tuple[Frame, Dict[str, Any]]]) -> None:
        for _, result in batch:
            handle(result)

    return sink


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
        self.max_wait_s = max_wait_s  # batching.max_wait_ms
        self.set_captures([capture] if isinstance(capture, LatestFrameCapture) else capture)
        self.sinks = sinks  # called in order with each batch's results; a list the daemon may append to
        self.observe = observe  # live checks (agent.daemon.livechecks): must never wait or raise
        self.pipeline = pipeline
        self.report = report
        self.handoff = handoff
        self.on_progress = on_progress
        self.on_result = on_result
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
        try:
            while not self.stop_event.is_set():
                self._maybe_swap()
                self._run_jobs()
                taken = self.batcher.next_batch(self.pipeline.model.spec.batch, timeout=0.25)
                if not taken:
                    if all(c.done() for c in self.captures):
                        self._all_sources_done()
                        break
                    if any(c.alive() for c in self.captures):
                        self.on_progress()  # idle, not stuck: the capture threads are re-opening sources
                    continue
                self._infer(taken)
                if self.max_frames and self.inferences >= self.max_frames:
                    log.info("inference: %d frames done (--max-frames); stopping", self.inferences)
                    self.stop_reason = "max frames reached"
                    break
        except Exception as exc:  # reported; the daemon stops and systemd restarts it
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("inference loop failed")
        finally:
            self.finished.set()

    def set_captures(self, captures: Sequence[LatestFrameCapture]) -> None:
        """Serve these captures from the next batch on (start-up, or a reload of the sources)."""
        self.captures = list(captures)
        self.batcher = Batcher(self.captures, self.max_wait_s)

    def _all_sources_done(self) -> None:
        failed = [c for c in self.captures if c.failed.is_set()]
        if failed:
            self.error = "every source stopped: " + "; ".join(f"{c.source_id}: {c.last_error}" for c in failed)
            log.error("inference: %s", self.error)
        else:
            log.info("inference: the source ended; stopping")
            self.stop_reason = "the source ended"

    def _infer(self, taken: List[Taken]) -> None:
        """One batch: preprocess (unless the capture threads did, for this input spec), one engine
        call with the short batch zero-padded, decode, then the batch's results to the sinks."""
        started = time.monotonic()
        spec = self.pipeline.model.spec
        samples, boxes = zip(*(p[1] if p is not None and p[0] == spec else preprocess(f.image, spec) for f, p in taken))
        if len(samples) == spec.batch:
            batch = np.stack(samples)  # one copy (each copy of a large array lets the capture threads in)
        else:
            batch = np.zeros(spec.tensor_shape(), dtype=np.dtype(spec.dtype))
            batch[: len(samples)] = np.stack(samples)
        self.batcher.wake_readers()  # the captures read their next frames while the engine runs
        outputs = self.pipeline.engine.infer({spec.name: batch})
        decoded = self.pipeline.decode(outputs, len(taken), list(boxes))
        end = time.monotonic()
        self.inferences += len(taken)
        self.batches += 1
        self._latencies.append((end - started) * 1000.0)
        self._ends.extend([end] * len(taken))
        if self._swap_from is not None:
            self._finish_swap(end, len(taken))
        if self.last_end is not None:
            self.max_gap_ms = max(self.max_gap_ms, (end - self.last_end) * 1000.0)
        self.last_end = end
        self.first_inference.set()
        self.on_progress()
        identity = {
            "engine": engine_label(self.report),
            "engine_id": self.report.get("cache_key"),
            "precision": served_precision(self.report),
        }
        results: List[Tuple[Frame, Dict[str, Any]]] = []
        for (frame, _), one in zip(taken, decoded):
            result = {
                "source": frame.source_id,
                "frame": frame.index,
                "origin": frame.origin,
                "frame_time": frame.wall_time,
                "frame_age_ms": round((started - frame.timestamp) * 1000.0, 2),
                **identity,
                **one.as_dict(),
            }
            results.append((frame, result))
            if self.observe is not None:
                self.observe(frame, result)
            if self.on_result is not None:
                self.on_result(result)
        for sink in self.sinks:
            sink(results)

    def reset_max_gap(self) -> None:
        """Start measuring the longest inference gap afresh (a rebuild starts)."""
        self.max_gap_ms = 0.0

    def _maybe_swap(self) -> None:
        candidate = self.handoff.take()
        if candidate is None:
            return
        pipeline, report = candidate
        old_pipeline, old_report = self.pipeline, self.report
        self.pipeline, self.report = pipeline, report
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
