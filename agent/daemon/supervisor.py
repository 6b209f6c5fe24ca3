"""The supervisor behind ``edge-agent run``: start-up, schedules, reload, shutdown and signals.

Threads: per configured source a capture supervisor and its reader (agent.sources.latest), the
inference loop (agent.daemon.loop, batching the sources' frames: agent.daemon.batcher), a
background rebuild when one runs (agent.daemon.swap), the telemetry sampler
(agent.telemetry.sampler), the MQTT link's threads (agent.mqtt.link; commands, routed by
agent.daemon.handlers, run on its worker threads) and this main thread, which owns signals, the
scheduler and configuration reloads. Which outcomes become events is agent.daemon.events; the
telemetry record is agent.daemon.telemetry_report.

- READY=1 goes to systemd once the engine is loaded and a first frame inferred; WATCHDOG=1 comes
  from inference progress only; STATUS= lines summarise the serving state. A missing baseline of the
  start-up engine is recorded before serving begins (live inference never pauses for it).
- One daemon per state directory (agent.daemon.statelock): a second one exits 2 naming the holder.
- SIGTERM / SIGINT: stop capture, let the in-flight inference finish (a benchmark or check in
  progress is cut short), flush what the outbox can, publish ``stopped``, exit 0, all within
  daemon.shutdown_timeout_s. The signal handler takes no lock (it sets a flag and arms an alarm):
  should the shutdown not end in time in any state (a build at start-up, a stuck thread), the
  alarm ends the process with exit code 1 one second after the timeout.
- SIGHUP: reload the configuration (validated first; on error the old one stays, reported).
- Benchmarks and accuracy checks run on the inference thread between two inferences (agent.daemon.jobs).
- Live checks (agent.daemon.livechecks): every inference is offered to shadow evaluation against the
  FP32 reference and to the live ring; their state goes out with telemetry, a class whose
  agreement falls below accuracy.shadow_min_agreement raises a ``drift`` event.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from agent import __version__
from agent.accuracy import baselines
from agent.build import engine as building
from agent.config.load import load_config
from agent.config.sections import Config, SourceConfig
from agent.daemon import events, handlers, jobs
from agent.daemon.finishing import Sink, per_result
from agent.daemon.handlers import COMMAND_TIMEOUT_S
from agent.daemon.livechecks import LiveChecks, open_shadow_reference
from agent.daemon.loop import InferenceLoop, prepare_for
from agent.daemon.scheduler import Scheduler
from agent.daemon.sdnotify import Notifier, WatchdogPacer, watchdog_interval_s
from agent.daemon.snapshots import ResultOutputs
from agent.daemon.statelock import lock_state_dir
from agent.daemon.swap import Busy, EngineState, Handoff, Rebuilder, gate_verdict
from agent.daemon.telemetry_report import ProcessStats, TelemetryReport
from agent.engines.identity import engine_label, served_precision
from agent.model.pipeline import Pipeline, make_decoder, prepare_model
from agent.mqtt.events import Event
from agent.mqtt.publisher import LogPublisher, Publisher, open_publisher
from agent.sources.cameras import gstreamer_missing_sentence
from agent.sources.frames import Frame
from agent.sources.latest import LatestFrameCapture, combined_stats
from agent.sources.open import open_source, probe_decodable
from agent.telemetry.throttle import throttling
from agent.util.cancel import Cancelled
from agent.util.cancel import check as cancel_point
from agent.util.errors import ConfigError, EdgeAgentError, InputError
from agent.util.schema import Node

log = logging.getLogger(__name__)
SCHEDULED = ("telemetry", "benchmark", "check")
# Config sections whose change needs a new engine, and those applied only by a restart.
REBUILD_KEYS = ("model", "backend", "precision", "calibration", "gate")
RESTART_KEYS = ("mqtt", "commands", "device", "paths", "telemetry", "results", "snapshots")
SOURCE_KEYS = ("source", "sources", "batching")  # a change re-opens the captures
# Attempts in a row without a frame before a file or image-folder source is given up (it opens but
# is not decodable); cameras and RTSP streams are retried for as long as the daemon runs.
FILE_SOURCE_MAX_FAILURES = 5


def changed_sections(old: Mapping[str, Any], new: Mapping[str, Any]) -> List[str]:
    """Top-level config sections whose values differ."""
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def warm_up(pipeline: Pipeline) -> None:
    """One inference on a blank frame, so the first live frame on a new engine pays no set-up cost."""
    spec = pipeline.model.spec
    blank = np.zeros((spec.height, spec.width, 3), dtype=np.uint8)
    pipeline.infer_frames([Frame(blank, -1, time.monotonic(), "warm-up")])


class Daemon:
    def __init__(
        self,
        cfg: Node,
        config_path: Optional[str],
        overrides: Sequence[str] = (),
        max_frames: Optional[int] = None,
        on_result: Optional[Callable[[Dict[str, Any]], None]] = None,
        environ: Optional[Mapping[str, str]] = None,
    ) -> None:
        self.cfg = cfg  # as loaded: a mapping, compared section by section on reload
        self.config = Config.from_node(cfg)  # its typed view, built once per load
        self.config_path = config_path
        self.overrides = list(overrides)
        self.max_frames = max_frames
        # Each batch's results, in order (the CLI's --json printer, the MQTT results publisher).
        self.result_sinks: List[Sink] = []
        if on_result is not None:
            self.result_sinks.append(per_result(on_result))
        env = os.environ if environ is None else environ
        self.notifier = Notifier(env)
        interval = watchdog_interval_s(env) if self.config.daemon.watchdog else None
        self.pacer = WatchdogPacer(self.notifier.watchdog, interval)
        self.stop_requested = threading.Event()
        self.reload_requested = threading.Event()
        self._signalled: Optional[int] = None  # set by the signal handler (which takes no lock)
        self._hup = False
        self._state_lock: Optional[IO[str]] = None
        self.state = EngineState(self.config.paths.state_dir)
        self.handoff = Handoff()
        self.publisher: Publisher = LogPublisher(self.status_fields)  # until run() opens the configured one
        self.outputs: Optional[ResultOutputs] = None  # results and snapshots over MQTT, once the publisher is open
        self.sampler: Any = None
        self.captures: List[LatestFrameCapture] = []
        self.loop: Optional[InferenceLoop] = None
        self.scheduler = Scheduler({}, time.monotonic())
        self.rebuilder = Rebuilder(self.build_engine, self._load, warm_up, self.handoff, self._rebuild_done)
        self._lock = threading.Lock()  # configuration reloads and schedule changes
        self._reopens_seen: Dict[str, int] = {}
        self._failures_seen: List[str] = []
        self._throttled: Optional[bool] = None
        self._telemetry_since = time.monotonic()
        self.last_check: Optional[Dict[str, Any]] = None
        self.live: Optional[LiveChecks] = None

    # ----- start-up --------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until a signal, --max-frames or the end of a finite source; returns the exit code."""
        try:
            return self._serve()
        finally:
            signal.alarm(0)  # the shutdown ended in time: no overdue exit after it

    def _serve(self) -> int:
        self._state_lock = lock_state_dir(self.config.paths.state_dir)
        self._install_signals()
        self.sampler = jobs.open_sampler(self.config.telemetry)
        self.publisher = open_publisher(self.config, handlers.bind(self), self.status_fields)
        self.publisher.start()
        self.outputs = ResultOutputs(self.config, self.publisher)
        self.result_sinks.extend(self.outputs.sinks)
        self.outputs.start()
        self.notifier.status("loading the engine")
        pipeline, report = self._initial_engine()
        if self._stopping():
            return self._stop_before_serving(pipeline)
        self._announce_state_corrupt(self.state.corrupt)
        self._baseline_if_missing(pipeline, report)  # before serving: live inference never pauses for it
        if self._stopping():
            return self._stop_before_serving(pipeline)
        self.live = LiveChecks(self.config, pipeline.model.labels, lambda: open_shadow_reference(self.config))
        self.live.engine_changed(report)
        self.captures = [self._make_capture(source) for source in self.config.sources]
        for capture in self.captures:
            capture.start()
        self.loop = InferenceLoop(
            self.captures,
            pipeline,
            report,
            self.handoff,
            self.pacer.progress,
            None,
            self._swapped,
            self.max_frames,
            self.live.observe,
            self.result_sinks,
            self.config.batching.max_wait_ms / 1000.0,
        )
        thread = threading.Thread(target=self.loop.run, name="inference", daemon=True)
        thread.start()
        self.notifier.status("waiting for the first frame")
        while not self._stopping() and not self.loop.finished.is_set():
            if self.loop.first_inference.wait(0.2):
                break
        if self.loop.first_inference.is_set():
            self.notifier.ready(self._status_line())
            self.publisher.update_status()
            log.info("ready: %s", self._status_line())
        self._apply_schedules(self.config)
        self._supervise()
        return self._shutdown(thread)

    def _initial_engine(self) -> Tuple[Pipeline, Dict[str, Any]]:
        """The engine of the last run when it still fits the model and the configured precision, else a build."""
        saved = self.state.resumable(self.config.precision)
        if saved and self._still_valid(saved):
            try:
                pipeline = self._load(saved)
                log.info("engine: resuming the %s engine of the last run", engine_label(saved))
                return pipeline, saved
            except EdgeAgentError as exc:
                log.warning("engine: the saved engine cannot be loaded (%s); building", exc)
                if isinstance(exc, building.EngineDamaged):
                    lost = {"file": str(saved.get("engine_path")), "reason": str(exc), "lost": "the engine file"}
                    self._announce_state_corrupt([lost])
        self.rebuilder.stop_check = self._stopping  # background rebuilds end at a stop too (agent.daemon.swap)
        prepare_model(self.config.model)  # a model no precision could serve exits 2 here, not as a failed INT8 gate
        report: Optional[Dict[str, Any]] = None
        failure: Optional[str]

        def build(precision: str) -> Dict[str, Any]:  # a stop (SIGTERM) cancels the build and the gate search
            keep = self._engines_in_use()
            return building.build(self.config, precision=precision, keep=keep, cancel=self._stopping).to_json()

        try:
            try:
                report = build(self.config.precision)
            except Cancelled:
                raise
            except EdgeAgentError as exc:
                if self.config.precision == "fp32":
                    raise
                failure = str(exc)
            else:
                failure = gate_verdict(report)
            if failure:
                events.publish(self.publisher, events.start_not_promoted(self.config.precision, failure))
                log.warning("engine: %s engine not promoted (%s); serving FP32", self.config.precision, failure)
                report = build("fp32")
        except Cancelled:  # nothing to serve: stop as _stop_before_serving does (exit 0: a stop was asked for)
            self.publisher.stop(max(0.1, self.config.daemon.shutdown_timeout_s / 2))
            self.notifier.close()
            log.info("stopped before serving (signal during the start-up build)")
            raise
        assert report is not None
        self.state.promote(report, self.config.precision)
        return self._load(report), report

    def _still_valid(self, report: Mapping[str, Any]) -> bool:
        if not Path(str(report.get("engine_path", ""))).is_file():
            return False
        if report.get("backend") != building.get_backend(self.config.backend.name).name:
            return False
        return report.get("model_sha256") == prepare_model(self.config.model).sha256

    def build_engine(self, precision: str, config: Optional[Config] = None) -> Dict[str, Any]:
        """Build (or find in the cache) an engine of ``precision``, keeping the engines in use."""
        return building.build(config or self.config, precision=precision, keep=self._engines_in_use()).to_json()

    def _engines_in_use(self) -> List[str]:
        """Cache keys a build must not evict: the serving, current and previous engines."""
        engines = self.state.read()
        reports = [engines.get("current"), engines.get("previous"), self.loop.report if self.loop is not None else None]
        return [str(r["cache_key"]) for r in reports if isinstance(r, dict) and r.get("cache_key")]

    def _load(self, report: Dict[str, Any]) -> Pipeline:
        engine, model = building.load_built(self.config, report)
        return Pipeline(engine, model, make_decoder(self.config.model, model))

    def _make_capture(self, source: SourceConfig) -> LatestFrameCapture:
        finite = source.kind in ("file", "images") and not source.loop
        serving = prepare_for(lambda: self.loop.pipeline if self.loop is not None else None)
        first, longest = source.reopen_backoff_s
        return LatestFrameCapture(
            lambda: open_source(source, sharing=len(self.config.sources)),
            source.read_timeout_s,
            (first, longest),
            finite,
            prepare=serving,
            source_id=source.id,
            max_failures=FILE_SOURCE_MAX_FAILURES if source.kind in ("file", "images") else None,
            pull=source.kind in ("file", "images") and not source.fps,  # fps: null = as fast as inference
        )

    # ----- signals and the main loop ---------------------------------------------------------

    def _install_signals(self) -> None:
        # Handlers run on the main thread between two bytecodes, possibly inside a held lock
        # (logging's, an Event's): they only set flags and arm the alarm, which are lock-free.
        bound = int(math.ceil(self.config.daemon.shutdown_timeout_s)) + 1

        def stop(signum: int, _frame: Any) -> None:
            if self._signalled is None:
                self._signalled = signum
                signal.alarm(bound)

        def hup(_signum: int, _frame: Any) -> None:
            self._hup = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, hup)
        signal.signal(signal.SIGALRM, shutdown_overdue)

    def _stopping(self) -> bool:
        """Whether a stop was asked for; turns a signal's flag into ``stop_requested`` (and a log line)."""
        if self._signalled is not None and not self.stop_requested.is_set():
            log.info("signal %s: stopping", signal.Signals(self._signalled).name)
            self.stop_requested.set()
        return self.stop_requested.is_set()

    def _supervise(self) -> None:
        assert self.loop is not None
        while not self._stopping() and not self.loop.finished.is_set():
            if self._hup or self.reload_requested.is_set():
                self._hup = False
                self.reload_requested.clear()
                self.reload()
            with self._lock:
                due = self.scheduler.due(time.monotonic())
                wait = self.scheduler.seconds_to_next(time.monotonic())
            for name in due:
                self.run_scheduled(name)
            time.sleep(min(0.2, wait) if wait is not None else 0.2)

    def _stop_before_serving(self, pipeline: Pipeline) -> int:
        """A stop asked for while the engine was being built or loaded: nothing served yet."""
        pipeline.engine.close()
        self.publisher.stop(max(0.1, self.config.daemon.shutdown_timeout_s / 2))
        self.notifier.close()
        log.info("stopped before serving (signal during start-up)")
        return 0

    def _shutdown(self, thread: threading.Thread) -> int:
        assert self.loop is not None
        deadline = time.monotonic() + self.config.daemon.shutdown_timeout_s
        self.notifier.stopping("stopping")
        for capture in self.captures:
            capture.stop(timeout=min(2.0, self.config.daemon.shutdown_timeout_s / 4) / len(self.captures))
        self.loop.stop_event.set()
        thread.join(max(0.0, deadline - time.monotonic() - 1.0))
        if thread.is_alive():
            log.warning("shutdown: the in-flight inference did not finish in time; exiting anyway")
        pending = self.handoff.withdraw()
        if pending is not None:
            pending[0].engine.close()
        running = self.rebuilder.running  # cancelled at the stop: its end (and its answer) comes before `stopped`
        if running and not self.rebuilder.stop(max(0.0, deadline - time.monotonic()) / 2):
            log.warning("shutdown: rebuild %s abandoned (the serving engine stays current)", running)
        if self.sampler is not None:
            self.sampler.stop()
        if self.live is not None:
            self.live.stop()
        if self.outputs is not None:  # what is queued goes to the publisher before it drains
            self.outputs.stop(min(2.0, max(0.1, deadline - time.monotonic()) / 4))
        left = max(0.1, deadline - time.monotonic())
        if not self.publisher.wait_drained(left / 2):
            log.warning("shutdown: the outbox is not empty; what is left is sent after the next start")
        self.publisher.stop(max(0.1, deadline - time.monotonic() - 0.5))
        self.notifier.close()
        if self._state_lock is not None:
            self._state_lock.close()
        log.info(
            "stopped after %d inferences (%s)",
            self.loop.inferences,
            self.loop.error or self.loop.stop_reason or "signal",
        )
        return 1 if self.loop.error else 0

    # ----- scheduled and requested work ------------------------------------------------------

    def _apply_schedules(self, config: Config) -> None:
        now = time.monotonic()
        intervals = {name: float(getattr(config.schedules, f"{name}_s")) for name in SCHEDULED}
        intervals["labels"] = float(config.accuracy.label_drop_interval_s)
        if intervals["check"] and not config.accuracy.spot_labels:
            log.info("schedules.check_s: no accuracy.spot_labels configured; scheduled checks are off")
            intervals["check"] = 0.0
        with self._lock:
            for name, seconds in intervals.items():
                self.scheduler.set_interval(name, seconds, now)

    def set_interval(self, schedule: str, seconds: float) -> Optional[float]:
        """Change one schedule (the set_interval command); seconds until the next scheduled job."""
        with self._lock:
            try:
                self.scheduler.set_interval(schedule, seconds, time.monotonic())
            except ValueError as exc:
                raise InputError(str(exc)) from None
            return self.scheduler.seconds_to_next(time.monotonic())

    def run_scheduled(self, name: str) -> None:
        """Publish telemetry now, or queue a benchmark or check on the inference thread."""
        assert self.loop is not None
        if name == "telemetry":
            telemetry = self.telemetry()
            self.publisher.publish_telemetry(telemetry.to_json())
            self._report_capture_trouble(telemetry.sources)
            self._report_throttling()
            self._report_live_drift((telemetry.live_checks or {}).get("live_labels") or {})
            self.notifier.status(self._status_line())
        elif name == "labels":
            self.ingest_label_drops()
        else:
            with self._lock:
                self.scheduler.started(name)  # not due again until this one has run
            self.loop.jobs.put(lambda pipeline: self._measure_quietly(name, pipeline))

    def _measure_quietly(self, name: str, pipeline: Pipeline) -> None:
        """A scheduled measurement: its failure is already published as an event; inference goes on.
        The next one is due one interval after this one ended."""
        try:
            self._measure(name, pipeline)
        except (EdgeAgentError, ImportError) as exc:
            log.warning("%s failed: %s", name, exc)
        finally:
            with self._lock:
                self.scheduler.done(name, time.monotonic())

    def _measure(self, name: str, pipeline: Pipeline) -> Dict[str, Any]:
        """Benchmark or check the serving engine (on the inference thread); publish and return the report."""
        assert self.loop is not None and self.captures
        try:
            if name == "benchmark":
                result = jobs.benchmark(
                    self.config, pipeline, self.loop.report, self.captures, self.loop.progress, self.sampler
                )
                result.update(self._accuracy_for_speed(pipeline))
            else:
                result = jobs.accuracy_check(self.config, pipeline, self.loop.report, self.loop.progress)
                self.last_check = result
                events.publish(self.publisher, events.check_drift(result))
        except (EdgeAgentError, ImportError) as exc:
            events.publish(self.publisher, events.measurement_failed(name, exc))
            raise
        kind = "benchmark" if name == "benchmark" else "accuracy"
        self.publisher.publish_report(kind, result)
        return result

    def _accuracy_for_speed(self, pipeline: Pipeline) -> Dict[str, Any]:
        """The accuracy that goes with a benchmark: the last check on the serving engine, or a check
        run now (and published) when there is none; null with the reason without a usable spot-labeled set.
        The build's gate result rides along, so an INT8 figure always shows what INT8 cost."""
        assert self.loop is not None
        engine_id = self.loop.report.get("cache_key")
        check = self.last_check
        gate = self.loop.report.get("gate")
        out: Dict[str, Any] = {"gate": gate} if gate else {}
        if (not check or check.get("engine", {}).get("id") != engine_id) and self.config.accuracy.spot_labels:
            try:
                jobs.require_spot_set(self.config, pipeline)  # a broken set: no check, the speed report says why
                check = self._measure("check", pipeline)
            except (EdgeAgentError, ImportError) as exc:  # speed never without its accuracy: say why it is missing
                return dict(out, accuracy=None, accuracy_reason=f"no accuracy for this engine: {exc}")
        if not check or check.get("engine", {}).get("id") != engine_id:
            out.update(
                accuracy=None,
                accuracy_reason=(
                    "accuracy.spot_labels is not set: there is no spot-labeled set to measure this engine on"
                ),
            )
            return out
        per_class = check.get("per_class") or {}
        out["accuracy"] = {
            "accuracy": check.get("accuracy"),
            "recall": {name: stats.get("recall") for name, stats in per_class.items()},
            "drift_status": (check.get("drift") or {}).get("status"),
            "samples": check.get("samples"),
            "ts": check.get("ts"),
        }
        return out

    def _report_live_drift(self, live_labels: Mapping[str, Any]) -> None:
        """``drift`` events from the live checks: classes whose agreement with the FP32 reference fell
        below the threshold, and a new warn / alert of the labeled live frames against the baseline."""
        if self.live is None:
            return
        events.publish(self.publisher, events.live_label_drift(self.live.new_label_drift(live_labels.get("drift"))))
        low = self.live.new_disagreements()
        events.publish(self.publisher, events.shadow_disagreement(low, self.live.engine, self.live.threshold))

    def ingest_label_drops(self) -> Optional[Dict[str, Any]]:
        """Apply label files dropped in the live ring's labels/ folder; their errors become an event."""
        if self.live is None:
            return None
        try:
            outcome = self.live.ingest_drops()
        except OSError as exc:
            log.warning("live labels: the drop folder cannot be read: %s", exc)
            return None
        events.publish(self.publisher, events.labels_rejected(outcome))
        if outcome and outcome["applied"]:
            log.info("live labels: %d dropped label(s) applied", outcome["applied"])
        return outcome

    def _report_capture_trouble(self, sources: List[Dict[str, Any]]) -> None:
        """Per source: a camera_lost event when it was re-opened since the last telemetry, or gave up."""
        for stats in sources:
            seen = self._reopens_seen.get(stats["id"], 0)
            events.publish(self.publisher, events.camera_lost(stats, seen))
            self._reopens_seen[stats["id"]] = max(seen, stats["reopens"])
            if stats["failed"] and stats["id"] not in self._failures_seen:
                self._failures_seen.append(stats["id"])
                events.publish(self.publisher, events.source_failed(stats))

    def _report_throttling(self) -> None:
        """A throttling event when the state changed over the samples since the last telemetry."""
        if self.sampler is None:
            return
        now = time.monotonic()
        samples = self.sampler.samples(self._telemetry_since, now)
        self._telemetry_since = now
        state = throttling([s.snapshot for s in samples])
        events.publish(self.publisher, events.throttling_changed(self._throttled, state))
        if state["throttled"] is not None:
            self._throttled = bool(state["throttled"])

    def run_on_loop(self, name: str, timeout: float = COMMAND_TIMEOUT_S) -> Dict[str, Any]:
        """Run a benchmark or check on the inference thread and wait for its report (a command)."""
        if self.loop is None or self.loop.finished.is_set():
            raise EdgeAgentError("the inference loop is not running")
        done = threading.Event()
        outcome: Dict[str, Any] = {}

        def job(pipeline: Pipeline) -> None:
            try:
                outcome["result"] = self._measure(name, pipeline)
            except BaseException as exc:
                outcome["error"] = exc
            finally:
                done.set()

        self.loop.jobs.put(job)
        if not done.wait(timeout):
            raise EdgeAgentError(f"{name} did not finish within {timeout:g} s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    def telemetry(self) -> TelemetryReport:
        assert self.loop is not None
        return TelemetryReport(
            pipeline=self.loop.stats(),
            capture=combined_stats(self.captures),
            sources=[c.stats() for c in self.captures],
            process=ProcessStats.now(),
            watchdog_pings=self.pacer.sent,
            system=jobs.system_telemetry(self.sampler),
            live_checks=self.live.snapshot() if self.live is not None else None,
            results=self.outputs.stats() if self.outputs is not None else None,
        )

    # ----- what the command handlers use (agent.daemon.handlers, on MQTT worker threads) -----

    def serving_label(self) -> str:
        return engine_label(self.loop.report) if self.loop is not None else "the current engine"

    def require_live(self, command: str) -> LiveChecks:
        """The live checks, or an error answer for ``command`` before the inference loop runs."""
        if self.live is None:
            raise EdgeAgentError(f"{command}: the inference loop is not running yet")
        return self.live

    # ----- rebuilds --------------------------------------------------------------------------

    def rebuild(
        self,
        precision: Optional[str] = None,
        reason: str = "requested",
        produce: Optional[Callable[[], Dict[str, Any]]] = None,
    ) -> Dict[str, Any]:
        """Start a background rebuild; its result arrives as report 'build' (and event 'engine_swapped')."""
        precision = precision or self.config.precision
        try:
            job = self.rebuilder.start(precision, reason, produce)
        except Busy as exc:
            return {"status": "busy", "job": exc.job_id}
        if self.loop is not None:
            self.loop.reset_max_gap()  # the swap event reports the longest gap while it built
        log.info("rebuild %s: %s engine (%s); inference continues", job, precision, reason)
        return {"status": "accepted", "job": job, "precision": precision}

    def _swapped(self, info: Dict[str, Any]) -> None:
        """Called on the inference thread once a new engine served its first frame."""
        if self.live is not None and self.loop is not None:
            self.live.engine_changed(self.loop.report)
        events.publish(self.publisher, events.engine_swapped(info, self.config.daemon.max_swap_gap_ms))

    def _rebuild_done(self, result: Dict[str, Any]) -> None:
        if result.get("status") == "swapped":
            self.state.promote(result["build"], self.config.precision)
            self.publisher.update_status()
            if self.config.accuracy.spot_labels and self.loop is not None:
                self.loop.jobs.put(self._baseline_job)
        events.publish(self.publisher, events.rebuild_not_promoted(result))
        self.publisher.publish_report("build", result)
        self.notifier.status(self._status_line())

    def _baseline_if_missing(self, pipeline: Pipeline, report: Dict[str, Any]) -> None:
        """The engine serving at start counts as promoted: record its baseline when there is none yet.
        Runs before serving starts (the engine is not shared yet), so live inference never pauses for
        it; each of its inferences feeds the watchdog and is a cancel point for a stop (SIGTERM)."""
        if not self.config.accuracy.spot_labels:
            return
        damaged = baselines.set_aside_damaged(self.config.paths.state_dir)
        for problem in damaged:
            log.error(
                "baseline %s is damaged (%s); moved to %s", problem["file"], problem["reason"], problem["moved_to"]
            )
        self._announce_state_corrupt(damaged)
        try:
            missing = baselines.latest(self.config.paths.state_dir) is None
        except (ImportError, EdgeAgentError):
            missing = True
        if not missing:
            return
        self.notifier.status("recording the start-up baseline")
        log.info("baseline: none yet; recording the start-up baseline before serving")

        def progress() -> None:
            self.pacer.progress()
            cancel_point(self._stopping, "the start-up baseline")

        try:
            self._record_baseline(pipeline, report, progress, "replaces a damaged baseline" if damaged else "promotion")
        except Cancelled:
            log.info("baseline: not recorded (a stop was asked for)")

    def _announce_state_corrupt(self, problems: List[Dict[str, Any]]) -> None:
        """One ``state_corrupt`` event per damaged state file that was moved aside or rebuilt."""
        for problem in problems:
            name = Path(problem["file"]).name
            message = f"{name} was damaged and is recreated; lost: {problem['lost']}"
            self.publisher.publish_event(Event.STATE_CORRUPT, "error", message, problem)

    def _baseline_job(self, pipeline: Pipeline) -> None:
        """The baseline of an engine promoted by a rebuild (a job on the inference thread)."""
        assert self.loop is not None
        self._record_baseline(pipeline, self.loop.report, self.loop.progress, "promotion")

    def _record_baseline(
        self, pipeline: Pipeline, report: Dict[str, Any], progress: Callable[[], None], reason: str
    ) -> None:
        """Record ``pipeline``'s baseline; a failure becomes a ``baseline_failed`` event (Cancelled passes)."""
        try:
            saved = jobs.baseline_of_serving(self.config, pipeline, report, progress, reason)
        except Cancelled:
            raise
        except (EdgeAgentError, ImportError) as exc:
            events.publish(self.publisher, events.baseline_failed(exc))
            return
        log.info("baseline recorded for %s: %s", engine_label(report), json.dumps(saved, default=str)[:200])

    # ----- configuration ---------------------------------------------------------------------

    def reload(self) -> Dict[str, Any]:
        """Re-read the configuration; on any error the running one stays and the error is reported."""
        with self._lock:
            try:
                new = load_config(self.config_path, self.overrides)
            except ConfigError as exc:
                log.error(
                    "reload: the new configuration is invalid; keeping the running one:\n  %s", "\n  ".join(exc.errors)
                )
                events.publish(self.publisher, events.config_rejected(exc.errors))
                return {"status": "rejected", "errors": exc.errors}
            old, self.cfg, self.config = self.cfg, new, Config.from_node(new)
        changed = changed_sections(old, new)
        applied = self._apply_config(self.config, changed)
        result = {
            "status": "reloaded",
            "changed": changed,
            "applied": applied,
            "needs_restart": [k for k in changed if k in RESTART_KEYS],
        }
        events.publish(self.publisher, events.config_reloaded(result))
        log.info("reload: %s", json.dumps(result))
        return result

    def _apply_config(self, new: Config, changed: List[str]) -> List[str]:
        applied = []
        if "schedules" in changed:
            self._apply_schedules(new)
            applied.append("schedules")
        if "logging" in changed:
            logging.getLogger().setLevel(getattr(logging, new.logging.level.upper()))
            applied.append("logging")
        if any(k in changed for k in SOURCE_KEYS) and self.loop is not None:
            replacements = [self._make_capture(source) for source in new.sources]
            for capture in replacements:
                capture.start()
            previous, self.captures = self.captures, replacements
            self.loop.set_captures(replacements, new.batching.max_wait_ms / 1000.0)
            for capture in previous:
                capture.stop()
            applied += [k for k in SOURCE_KEYS if k in changed]
        if any(k in changed for k in REBUILD_KEYS):
            outcome = self.rebuild(new.precision, "configuration changed")
            applied.append(f"rebuild ({outcome['status']})")
        applied += [k for k in ("daemon", "bench", "accuracy") if k in changed]
        return applied

    # ----- status ----------------------------------------------------------------------------

    def status_fields(self) -> Dict[str, Any]:
        """What the retained status message carries besides state, version and uptime."""
        if self.loop is None:
            return {"engine": None, "serving": False}
        report = self.loop.report
        stats = self.loop.stats()
        return {
            "engine": {
                "backend": report.get("backend"),
                "precision": served_precision(report),
                "id": report.get("cache_key"),
            },
            "serving": self.loop.first_inference.is_set() and not self.loop.finished.is_set(),
            "fps": stats["fps"],
            "inferences": stats["inferences"],
        }

    def _status_line(self) -> str:
        assert self.loop is not None
        s, c = self.loop.stats(), combined_stats(self.captures)
        line = (
            f"serving {s['engine']}: {s['fps']} fps, p50 {s['latency_ms_p50']} ms, "
            f"{c['dropped']} dropped, {c['reopens']} re-opens"
        )
        return line + (f"; rebuild {self.rebuilder.running} running" if self.rebuilder.running else "")

    def status(self) -> Dict[str, Any]:
        """The 'status' command's answer."""
        answer = dict(
            self.status_fields(),
            telemetry=self.telemetry().to_json(),
            rebuild=self.rebuilder.running,
            engines=self.state.read(),
        )
        answer["version"] = __version__
        return answer


def shutdown_overdue(_signum: int, _frame: Any) -> None:
    """SIGALRM after a stop signal: the shutdown overran daemon.shutdown_timeout_s; end the process now."""
    os.write(2, b"edge-agent: shutdown overran daemon.shutdown_timeout_s; exiting without a clean stop\n")
    os._exit(1)


def check_sources_at_start(sources: Sequence[SourceConfig]) -> None:
    """check_source_at_start for each configured source, then a first frame read from each file and
    image-folder source: one that opens but is not decodable fails now, naming its id and uri."""
    for source in sources:
        try:
            check_source_at_start(source)
        except InputError as exc:
            raise InputError(f"source {source.id}: {exc}") from None
    for source in sources:
        if source.kind in ("file", "images"):
            probe_decodable(source)


def check_source_at_start(source: SourceConfig) -> None:
    """Fail early (exit code 2) on a source that can never work; say when cv2 lacks the GStreamer it needs."""
    import cv2

    sentence = gstreamer_missing_sentence(source.kind, cv2.getBuildInformation())
    if sentence and source.kind == "csi":
        raise InputError(sentence)  # no retry can help: this OpenCV cannot open a CSI camera
    if sentence:
        log.warning(sentence)
    if source.kind == "file" and not Path(source.uri).is_file():
        raise InputError(f"source.uri: video file not found: {source.uri}")
    if source.kind == "images" and not Path(source.uri).is_dir():
        raise InputError(f"source.uri: image folder not found: {source.uri}")
