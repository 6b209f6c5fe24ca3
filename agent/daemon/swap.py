"""Engine rebuilds without downtime: build in the background, gate, hand over between two inferences.

``Rebuilder`` runs ``build(precision)`` (agent.build.engine.build: calibration, build and accuracy gate)
on its own thread while the inference loop keeps serving. A candidate is promoted only with a
passed gate (FP32 is the reference and needs none); it is loaded and warmed up off the inference
thread, then offered through ``Handoff``: the inference loop swaps it in between two inferences
(so no inference ever sees a half-swapped engine) and reports the gap. A failed build, gate, load
or warm-up leaves the serving engine alone and is reported with the reason. ``EngineState``
keeps the current and previous engine reports under the state directory for restarts and
rollback.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

from agent.engines.identity import served_precision
from agent.util.cancel import CancelCheck, Cancelled, check, scope
from agent.util.errors import EdgeAgentError, GateFailed
from agent.util.fileio import atomic_write_json, quarantine

log = logging.getLogger(__name__)
STATE_FORMAT = 1
GATED_PRECISIONS = ("int8", "fp16")


class Busy(EdgeAgentError):
    """Another rebuild is running."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"a build or calibration is already running (job {job_id})")


def state_problem(data: Any) -> Optional[str]:
    """What is wrong with the content of engines.json, or None."""
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        return f"expected an object of format {STATE_FORMAT}, found {found!r}"
    bad = [key for key in ("current", "previous") if data.get(key) is not None and not isinstance(data[key], dict)]
    return f"{' and '.join(bad)} must be an object or null" if bad else None


def gate_verdict(report: Mapping[str, Any]) -> Optional[str]:
    """Why a build report must not be promoted, or None when it may be."""
    built = served_precision(report)
    gate = report.get("gate")
    if report.get("promoted") is False:
        reason = gate.get("reason") or gate.get("decision") if isinstance(gate, dict) else None
        return f"the {report.get('precision', built)} build was not promoted" + (
            f": {reason}" if reason else " (see its gate)"
        )
    if gate is not None and not gate.get("passed", False):
        return f"the {built} engine failed the accuracy gate"
    if built in GATED_PRECISIONS and gate is None:
        return f"the {built} build report carries no accuracy gate result; an ungated engine is never promoted"
    return None


class EngineState:
    """current and previous engine build reports, in <state_dir>/daemon/engines.json.

    Paths inside the state directory are stored relative to it (a copied state directory serves
    its own files). A file that is not this format's JSON is moved aside (``*.corrupt-<time>``),
    logged and listed in ``corrupt`` for the daemon to announce; the state starts empty again.
    """

    def __init__(self, state_dir: str, clock: Callable[[], float] = time.time) -> None:
        self.root = Path(state_dir)
        self.path = self.root / "daemon" / "engines.json"
        self._clock = clock
        self.corrupt: List[Dict[str, Any]] = []

    def read(self) -> Dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except OSError:
            return {}
        try:
            data = json.loads(raw.decode("utf-8"))
        except ValueError as exc:
            problem: Optional[str] = f"not UTF-8 JSON ({exc})"
        else:
            problem = state_problem(data)
        if problem:
            self._set_aside(problem, len(raw))
            return {}
        for key in ("current", "previous"):
            if isinstance(data.get(key), dict):
                data[key] = self._paths(data[key], lambda p: str(self.root / p) if not Path(p).is_absolute() else p)
        return data

    def _set_aside(self, problem: str, size: int) -> None:
        try:
            moved = quarantine(self.path, self._clock())
        except FileNotFoundError:  # another thread's read moved it aside first
            return
        lost = "the current and previous engine records (a restart builds the configured precision; no rollback)"
        self.corrupt.append({"file": str(self.path), "moved_to": str(moved), "reason": problem, "lost": lost})
        log.error(
            "engine state %s (%d bytes) is damaged: %s; moved to %s; lost %s", self.path, size, problem, moved, lost
        )

    def _paths(self, report: Mapping[str, Any], change: Callable[[str], str]) -> Dict[str, Any]:
        out = dict(report)
        for key in ("engine_path", "report_path"):
            if isinstance(out.get(key), str) and out[key]:
                out[key] = change(out[key])
        return out

    def _relative(self, path: str) -> str:
        try:
            return str(Path(os.path.abspath(path)).relative_to(os.path.abspath(self.root)))
        except ValueError:  # outside the state directory (paths.engine_cache elsewhere)
            return path

    def promote(self, report: Mapping[str, Any], config_precision: str) -> None:
        """``report`` becomes current; the old current becomes previous (unless it is the same engine).

        ``config_precision`` is the configured precision at the time: a restart resumes this
        engine only while the configuration still asks for the same precision.
        """
        old = self.read()
        current = old.get("current")
        if current and _same_file(current.get("engine_path"), report.get("engine_path")):
            current = old.get("previous")
        state = {
            "format": STATE_FORMAT,
            "current": self._paths(report, self._relative),
            "previous": self._paths(current, self._relative) if current else None,
            "config_precision": config_precision,
            "updated": time.time(),
        }
        atomic_write_json(self.path, state)

    def resumable(self, config_precision: str) -> Optional[Dict[str, Any]]:
        """The current engine's report, if the configured precision is still the one it was promoted under."""
        data = self.read()
        return data.get("current") if data.get("config_precision") == config_precision else None


def _same_file(a: Any, b: Any) -> bool:
    return isinstance(a, str) and isinstance(b, str) and os.path.abspath(a) == os.path.abspath(b)


class Handoff:
    """One pending engine, offered by a rebuild and taken by the inference loop between inferences."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: Optional[Any] = None
        self.swapped = threading.Event()
        self.swap_info: Dict[str, Any] = {}

    def offer(self, candidate: Any) -> None:
        with self._lock:
            self._pending = candidate
            self.swapped.clear()

    def take(self) -> Optional[Any]:
        with self._lock:
            candidate, self._pending = self._pending, None
            return candidate

    def withdraw(self) -> Optional[Any]:
        """Take back a candidate the loop never took (shutdown); the caller closes it."""
        return self.take()

    def done(self, info: Mapping[str, Any]) -> None:
        """Called by the inference loop once the candidate serves."""
        self.swap_info = dict(info)
        self.swapped.set()


class Rebuilder:
    """At most one background rebuild at a time.

    A job runs under a cancel scope (agent.util.cancel): ``stop()``, or ``stop_check`` (the daemon's
    stop flag, set by the daemon) turning true, cancels its build and gate search at the next step;
    the job then ends with status ``cancelled`` (its result and ``on_done`` as for any other end).
    """

    def __init__(
        self,
        build: Callable[[str], Dict[str, Any]],
        load: Callable[[Dict[str, Any]], Any],
        warm_up: Callable[[Any], None],
        handoff: Handoff,
        on_done: Callable[[Dict[str, Any]], None],
        swap_timeout_s: float = 30.0,
    ) -> None:
        self.build = build
        self.load = load
        self.warm_up = warm_up
        self.handoff = handoff
        self.on_done = on_done
        self.swap_timeout_s = swap_timeout_s
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self.results: Dict[str, Dict[str, Any]] = {}
        self._job: Optional[str] = None
        self.cancelled = threading.Event()
        self.stop_check: Optional[CancelCheck] = None

    def stopping(self) -> bool:
        """Whether jobs are to stop: ``stop()`` was called or ``stop_check`` says so."""
        return self.cancelled.is_set() or bool(self.stop_check is not None and self.stop_check())

    def stop(self, timeout: float) -> bool:
        """Cancel the running job and wait up to ``timeout`` s for it to end; True when none runs."""
        self.cancelled.set()
        with self._done:
            return self._done.wait_for(lambda: self._job is None, timeout)

    @property
    def running(self) -> Optional[str]:
        return self._job

    def start(self, precision: str, reason: str, produce: Optional[Callable[[], Dict[str, Any]]] = None) -> str:
        """Start a rebuild; returns its job id, or raises Busy.

        ``produce`` replaces ``build(precision)`` for this job (e.g. a rollback returns the
        previous engine's report, or a build with other calibration settings).
        """
        with self._lock:
            if self._job is not None:
                raise Busy(self._job)
            check(self.stopping, f"{reason} rebuild")
            self._job = uuid.uuid4().hex[:12]
            job = self._job
        work = produce or (lambda: self.build(precision))
        threading.Thread(
            target=self._run, args=(job, precision, reason, work), name=f"rebuild-{job}", daemon=True
        ).start()
        return job

    def run_exclusive(self, name: str, work: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
        """Run ``work`` here while holding the rebuild slot (a calibration); raises Busy."""
        with self._lock:
            if self._job is not None:
                raise Busy(self._job)
            self._job = f"{name}-{uuid.uuid4().hex[:8]}"
        try:
            return work()
        finally:
            with self._done:
                self._job = None
                self._done.notify_all()

    def wait(self, job: str, timeout: float) -> Optional[Dict[str, Any]]:
        """The result of ``job`` once it is done, or None on timeout."""
        with self._done:
            self._done.wait_for(lambda: job in self.results, timeout)
            return self.results.get(job)

    def _run(self, job: str, precision: str, reason: str, work: Callable[[], Dict[str, Any]]) -> None:
        started = time.monotonic()
        result: Dict[str, Any] = {"job": job, "requested_precision": precision, "reason": reason}
        try:
            with scope(self.stopping):
                result.update(self._build_and_swap(work()))
        except Cancelled as exc:
            log.info("rebuild %s: %s", job, exc)
            result.update(status="cancelled", error=str(exc))
        except GateFailed as exc:
            result.update(
                status="rejected", error=str(exc), gate=getattr(exc, "gate", None) or getattr(exc, "report", None)
            )
        except Exception as exc:  # any failure leaves the serving engine in place and is reported
            if not isinstance(exc, EdgeAgentError):
                log.exception("rebuild %s failed with an unexpected error", job)
            result.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        result["duration_s"] = round(time.monotonic() - started, 3)
        try:
            self.on_done(result)
        finally:
            with self._done:
                self.results[job] = result
                while len(self.results) > 100:
                    self.results.pop(next(iter(self.results)))
                self._job = None
                self._done.notify_all()

    def _build_and_swap(self, report: Dict[str, Any]) -> Dict[str, Any]:
        refusal = gate_verdict(report)
        if refusal:
            return {"status": "rejected", "error": refusal, "build": report}
        check(self.stopping, "rebuild")
        candidate = self.load(report)
        try:
            self.warm_up(candidate)
        except Exception:
            _close(candidate)
            raise
        self.handoff.offer((candidate, report))
        if not self._swapped_in_time():
            taken_back = self.handoff.withdraw()
            if taken_back is not None:
                _close(taken_back[0])
                check(self.stopping, "rebuild (before the swap)")
                return {
                    "status": "failed",
                    "error": f"the inference loop did not take the new engine within {self.swap_timeout_s:g} s",
                    "build": report,
                }
            # the loop took it just now, or a shutdown took it back (then it never swaps)
            if not self.handoff.swapped.wait(1.0 if self.stopping() else self.swap_timeout_s):
                check(self.stopping, "rebuild (before the swap)")
        return {"status": "swapped", "build": report, "swap": self.handoff.swap_info}

    def _swapped_in_time(self) -> bool:
        """Wait for the inference loop to take the candidate: False after swap_timeout_s or a stop."""
        deadline = time.monotonic() + self.swap_timeout_s
        while not self.handoff.swapped.wait(min(0.1, max(0.0, deadline - time.monotonic()))):
            if self.stopping() or time.monotonic() >= deadline:
                return False
        return True


def _close(candidate: Any) -> None:
    engine = getattr(candidate, "engine", None)
    if engine is not None:
        engine.close()
