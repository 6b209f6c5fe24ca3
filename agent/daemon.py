"""The supervisor behind ``edge-agent run``: capture, inference, schedules, commands, reports, signals.

Threads: the capture supervisor and its reader (agent.capture), the inference loop (agent.loop),
a background rebuild when one runs (agent.swap), the publisher's own thread (MQTT), and this
main thread, which owns signals, the scheduler and configuration reloads.

- READY=1 goes to systemd once the engine is loaded and a first frame inferred; WATCHDOG=1 comes
  from inference progress only; STATUS= lines summarise the serving state.
- SIGTERM / SIGINT: stop capture, let the in-flight inference finish, flush what the publisher
  can, publish ``stopped``, exit 0, all within daemon.shutdown_timeout_s.
- SIGHUP: reload the configuration (validated first; on error the old one stays, reported).
- Benchmarks and accuracy checks run on the inference thread between two inferences, with the
  device to themselves: live inference pauses for their duration (their report says so, with
  the frames the capture thread dropped meanwhile).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from . import __version__
from . import build as building
from .capture import LatestFrameCapture
from .config import load_config
from .errors import ConfigError, EdgeAgentError, InputError
from .loop import InferenceLoop, ProgressEngine, engine_label
from .pipeline import Pipeline, make_decoder, prepare_model
from .scheduler import Scheduler
from .schema import Node
from .sdnotify import Notifier, WatchdogPacer, watchdog_interval_s
from .sources import Frame, open_source
from .swap import Busy, EngineState, Handoff, Rebuilder

log = logging.getLogger(__name__)
SCHEDULED = ("telemetry", "benchmark", "check")
# Config sections whose change needs a new engine, and those applied only by a restart.
REBUILD_KEYS = ("model", "backend", "precision", "calibration", "gate")
RESTART_KEYS = ("mqtt", "commands", "device", "paths")


class LogPublisher:
    """Reports as JSON log lines: used when MQTT is disabled (and the MQTT module's stand-in)."""

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        self.sent: Dict[str, int] = {}

    def _emit(self, what: str, kind: str, payload: Mapping[str, Any]) -> None:
        self.sent[kind] = self.sent.get(kind, 0) + 1
        log.info("%s %s: %s", what, kind, json.dumps(payload, default=str, sort_keys=True))

    def publish_report(self, kind: str, payload: Mapping[str, Any]) -> None:
        self._emit("report", kind, payload)

    def publish_event(self, kind: str, payload: Mapping[str, Any]) -> None:
        self._emit("event", kind, payload)

    def status(self, state: str, info: Mapping[str, Any]) -> None:
        self._emit("status", state, info)

    def flush(self, timeout_s: float) -> bool:
        return True

    def close(self) -> None:
        """Nothing to release."""


def make_publisher(cfg: Node) -> Any:
    """The MQTT publisher when mqtt.enabled and the MQTT module is installed, else the log."""
    if cfg.mqtt.enabled:
        try:
            from .mqtt import make_publisher as make_mqtt_publisher  # type: ignore[attr-defined]
        except ImportError:
            log.warning("mqtt.enabled is true but this version has no MQTT publisher; reports go to the log")
        else:
            return make_mqtt_publisher(cfg)
    return LogPublisher(cfg.device.id)


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
        self.cfg = cfg
        self.config_path = config_path
        self.overrides = list(overrides)
        self.max_frames = max_frames
        self.on_result = on_result
        env = os.environ if environ is None else environ
        self.notifier = Notifier(env)
        interval = watchdog_interval_s(env) if cfg.daemon.watchdog else None
        self.pacer = WatchdogPacer(self.notifier.watchdog, interval)
        self.stop_requested = threading.Event()
        self.reload_requested = threading.Event()
        self.state = EngineState(cfg.paths.state_dir)
        self.handoff = Handoff()
        self.publisher: Any = None
        self.capture: Optional[LatestFrameCapture] = None
        self.loop: Optional[InferenceLoop] = None
        self.scheduler = Scheduler({}, time.monotonic())
        self.rebuilder = Rebuilder(self._build, self._load, warm_up, self.handoff, self._rebuild_done)
        self._reload_lock = threading.Lock()
        self.last_check: Optional[Dict[str, Any]] = None

    # ----- start-up --------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until a signal, --max-frames or the end of a finite source; returns the exit code."""
        self._install_signals()
        self.publisher = make_publisher(self.cfg)
        self.publisher.status("starting", {"version": __version__})
        self.notifier.status("loading the engine")
        pipeline, report = self._initial_engine()
        self.capture = self._make_capture(self.cfg)
        self.capture.start()
        self.loop = InferenceLoop(
            self.capture, pipeline, report, self.handoff, self.pacer.progress, self.on_result, self._swapped, self.max_frames
        )
        thread = threading.Thread(target=self.loop.run, name="inference", daemon=True)
        thread.start()
        self.notifier.status("waiting for the first frame")
        while not self.stop_requested.is_set() and not self.loop.finished.is_set():
            if self.loop.first_inference.wait(0.2):
                break
        if self.loop.first_inference.is_set():
            self.notifier.ready(self._status_line())
            self.publisher.status("online", self._status_info())
            log.info("serving: %s", self._status_line())
        self._apply_schedules(self.cfg)
        self._supervise()
        return self._shutdown(thread)

    def _initial_engine(self) -> Tuple[Pipeline, Dict[str, Any]]:
        """The engine of the last run when it still fits the model, else a build of the configured precision."""
        saved = self.state.current()
        if saved and self._still_valid(saved):
            try:
                pipeline = self._load(saved)
                log.info("engine: resuming the %s engine of the last run", engine_label(saved))
                return pipeline, saved
            except EdgeAgentError as exc:
                log.warning("engine: the saved engine cannot be loaded (%s); building", exc)
        try:
            report = self._build(self.cfg.precision)
        except EdgeAgentError as exc:
            if self.cfg.precision == "fp32":
                raise
            self.publisher.publish_event("build_failed", {"precision": self.cfg.precision, "error": str(exc), "fallback": "fp32"})
            log.warning("engine: %s engine not available (%s); serving FP32", self.cfg.precision, exc)
            report = self._build("fp32")
        self.state.promote(report)
        return self._load(report), report

    def _still_valid(self, report: Mapping[str, Any]) -> bool:
        if not Path(str(report.get("engine_path", ""))).is_file():
            return False
        if report.get("backend") != building.get_backend(self.cfg.backend.name).name:
            return False
        return report.get("model_sha256") == prepare_model(self.cfg).sha256

    def _build(self, precision: str) -> Dict[str, Any]:
        return building.build(self.cfg, precision=precision)

    def _load(self, report: Dict[str, Any]) -> Pipeline:
        engine, model = building.load_built(self.cfg, report)
        return Pipeline(engine, model, make_decoder(self.cfg, model))

    def _make_capture(self, cfg: Node) -> LatestFrameCapture:
        source = cfg.source
        finite = source.kind in ("file", "images") and not source.loop
        return LatestFrameCapture(lambda: open_source(source), source.read_timeout_s, tuple(source.reopen_backoff_s), finite)

    # ----- signals and the main loop ---------------------------------------------------------

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: Any) -> None:
            log.info("signal %s: stopping", signal.Signals(signum).name)
            self.stop_requested.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, lambda _s, _f: self.reload_requested.set())

    def _supervise(self) -> None:
        assert self.loop is not None
        while not self.stop_requested.is_set() and not self.loop.finished.is_set():
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self.reload()
            for name in self.scheduler.due(time.monotonic()):
                self.run_job(name)
            wait = self.scheduler.seconds_to_next(time.monotonic())
            self.stop_requested.wait(min(0.2, wait) if wait is not None else 0.2)

    def _shutdown(self, thread: threading.Thread) -> int:
        assert self.loop is not None and self.capture is not None
        deadline = time.monotonic() + self.cfg.daemon.shutdown_timeout_s
        self.notifier.stopping("stopping")
        self.capture.stop(timeout=min(2.0, self.cfg.daemon.shutdown_timeout_s / 4))
        self.loop.stop_event.set()
        thread.join(max(0.0, deadline - time.monotonic() - 1.0))
        if thread.is_alive():
            log.warning("shutdown: the in-flight inference did not finish in time; exiting anyway")
        pending = self.handoff.withdraw()
        if pending is not None:
            pending[0].engine.close()
        if self.rebuilder.running:
            log.warning("shutdown: rebuild %s abandoned", self.rebuilder.running)
        error = self.loop.error
        info = dict(self._status_info(), reason=error or self.loop.stop_reason or "signal")
        self.publisher.status("stopped", info)
        flushed = self.publisher.flush(max(0.1, deadline - time.monotonic()))
        if not flushed:
            log.warning("shutdown: the outbox could not be flushed before the deadline; it is kept for the next start")
        self.publisher.close()
        self.notifier.close()
        log.info("stopped after %d inferences", self.loop.inferences)
        return 1 if error else 0

    # ----- scheduled jobs --------------------------------------------------------------------

    def _apply_schedules(self, cfg: Node) -> None:
        now = time.monotonic()
        for name in SCHEDULED:
            self.scheduler.set_interval(name, float(cfg.schedules[f"{name}_s"]), now)

    def run_job(self, name: str) -> None:
        """Run (or queue on the inference thread) a scheduled or requested job."""
        assert self.loop is not None
        if name == "telemetry":
            self.publisher.publish_report("telemetry", self.telemetry())
            self.notifier.status(self._status_line())
        elif name == "benchmark":
            self.loop.jobs.put(self._benchmark_job)
        elif name == "check":
            self.loop.jobs.put(self._check_job)

    def telemetry(self) -> Dict[str, Any]:
        assert self.loop is not None and self.capture is not None
        payload: Dict[str, Any] = {"pipeline": self.loop.stats(), "capture": self.capture.stats(), "watchdog_pings": self.pacer.sent}
        payload["system"] = self._system_sample()
        return payload

    def _system_sample(self) -> Dict[str, Any]:
        import psutil

        process = psutil.Process()
        return {"rss_mb": round(process.memory_info().rss / 1e6, 1), "open_fds": process.num_fds(), "threads": process.num_threads()}

    def _benchmark_job(self, pipeline: Pipeline) -> None:
        assert self.capture is not None
        from .bench import bench_engine

        bench = self.cfg.bench
        spec = pipeline.model.spec
        feeds = {spec.name: np.random.default_rng(0).standard_normal(spec.tensor_shape()).astype(spec.dtype)}
        dropped_before, started = self.capture.dropped, time.monotonic()
        try:
            result = bench_engine(ProgressEngine(pipeline.engine, self.pacer.progress), feeds, spec.batch, bench.warmup_s, bench.min_duration_s, bench.min_iterations)
        except Exception as exc:
            self.publisher.publish_event("benchmark_failed", {"error": f"{type(exc).__name__}: {exc}"})
            return
        paused = time.monotonic() - started
        result["engine"] = {"backend": self.loop.report.get("backend") if self.loop else None, "precision": pipeline.engine.info.get("precision")}
        result["device_sharing"] = {
            "mode": "exclusive",
            "how": "run on the inference thread between two inferences; live inference paused meanwhile and the capture thread kept only the newest frame",
            "live_paused_s": round(paused, 3),
            "frames_dropped_meanwhile": self.capture.dropped - dropped_before,
        }
        result["last_accuracy"] = self.last_check
        self.publisher.publish_report("benchmark", result)

    def _check_job(self, pipeline: Pipeline) -> None:
        try:
            from .accuracy import run_check  # type: ignore[attr-defined]
        except ImportError:
            self.publisher.publish_event("check_unavailable", {"reason": "accuracy checks are not in this version"})
            return
        try:
            self.last_check = run_check(self.cfg, pipeline)
        except EdgeAgentError as exc:
            self.publisher.publish_event("check_failed", {"error": str(exc)})
            return
        self.publisher.publish_report("accuracy", self.last_check)

    # ----- rebuilds --------------------------------------------------------------------------

    def rebuild(self, precision: Optional[str] = None, reason: str = "requested", report: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Start a background rebuild; the result arrives as report 'build' (and event 'engine_swapped')."""
        precision = precision or self.cfg.precision
        try:
            job = self.rebuilder.start(precision, reason, report)
        except Busy as exc:
            return {"status": "busy", "job": exc.job_id}
        self.notifier.status(f"{self._status_line()}; rebuilding {precision}")
        return {"status": "accepted", "job": job, "precision": precision}

    def rollback(self) -> Dict[str, Any]:
        """Swap the previous engine back in (through the same handoff as a rebuild)."""
        previous = self.state.previous()
        if not previous or not Path(str(previous.get("engine_path", ""))).is_file():
            return {"status": "failed", "error": "no previous engine to roll back to"}
        return self.rebuild(previous.get("built_precision", previous.get("precision")), "rollback", previous)

    def _swapped(self, info: Dict[str, Any]) -> None:
        bound = self.cfg.daemon.max_swap_gap_ms
        info = dict(info, max_swap_gap_ms=bound, within_bound=info["gap_ms"] <= bound)
        self.publisher.publish_event("engine_swapped", info)

    def _rebuild_done(self, result: Dict[str, Any]) -> None:
        if result.get("status") == "swapped":
            self.state.promote(result["build"])
        else:
            self.publisher.publish_event("build_failed", {k: result.get(k) for k in ("job", "requested_precision", "status", "error", "reason")})
        self.publisher.publish_report("build", result)
        self.notifier.status(self._status_line())

    # ----- configuration ---------------------------------------------------------------------

    def reload(self) -> Dict[str, Any]:
        """Re-read the configuration; on any error the running one stays and the error is reported."""
        with self._reload_lock:
            try:
                new = load_config(self.config_path, self.overrides)
            except ConfigError as exc:
                log.error("reload: the new configuration is invalid; keeping the running one:\n  %s", "\n  ".join(exc.errors))
                result: Dict[str, Any] = {"status": "rejected", "errors": exc.errors}
                self.publisher.publish_event("config_rejected", result)
                return result
            old, self.cfg = self.cfg, new
            changed = changed_sections(old, new)
            applied = self._apply_config(old, new, changed)
            result = {"status": "reloaded", "changed": changed, "applied": applied, "needs_restart": [k for k in changed if k in RESTART_KEYS]}
            self.publisher.publish_event("config_reloaded", result)
            log.info("reload: %s", json.dumps(result))
            return result

    def _apply_config(self, old: Node, new: Node, changed: List[str]) -> List[str]:
        applied = []
        if "schedules" in changed:
            self._apply_schedules(new)
            applied.append("schedules")
        if "logging" in changed:
            logging.getLogger().setLevel(getattr(logging, new.logging.level.upper()))
            applied.append("logging")
        if "source" in changed and self.loop is not None:
            replacement = self._make_capture(new)
            replacement.start()
            previous, self.loop.capture = self.loop.capture, replacement
            self.capture = replacement
            previous.stop()
            applied.append("source")
        if any(k in changed for k in REBUILD_KEYS):
            outcome = self.rebuild(new.precision, "configuration changed")
            applied.append(f"rebuild ({outcome['status']})")
        if "daemon" in changed:
            applied.append("daemon")
        return applied

    # ----- status ----------------------------------------------------------------------------

    def _status_info(self) -> Dict[str, Any]:
        stats = self.loop.stats() if self.loop else {}
        return {"version": __version__, "engine": stats.get("engine"), "uptime_s": stats.get("uptime_s"), "inferences": stats.get("inferences")}

    def _status_line(self) -> str:
        assert self.loop is not None and self.capture is not None
        s, c = self.loop.stats(), self.capture.stats()
        return f"serving {s['engine']}: {s['fps']} fps, p50 {s['latency_ms_p50']} ms, {c['dropped']} dropped, {c['reopens']} re-opens"

    def status(self) -> Dict[str, Any]:
        """The 'status' command's answer."""
        return dict(self._status_info(), **self.telemetry(), rebuild=self.rebuilder.running, state=self.state.read())


def print_result(result: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(result, default=str) + "\n")
    sys.stdout.flush()


def check_source_at_start(cfg: Node) -> None:
    """Fail early (exit code 2) on a source that can never work; say when cv2 lacks the GStreamer it needs."""
    import cv2

    from .cameras import gstreamer_missing_sentence

    sentence = gstreamer_missing_sentence(cfg.source.kind, cv2.getBuildInformation())
    if sentence:
        log.warning(sentence)
    if cfg.source.kind == "file" and not Path(cfg.source.uri).is_file():
        raise InputError(f"source.uri: video file not found: {cfg.source.uri}")
    if cfg.source.kind == "images" and not Path(cfg.source.uri).is_dir():
        raise InputError(f"source.uri: image folder not found: {cfg.source.uri}")
