"""The daemon's remote commands: one function per command, routed by :data:`HANDLERS`.

The table has the names of agent.mqtt.commands.COMMANDS (their argument schemas); the command
server calls each handler as ``handler(args, progress)`` on one of the MQTT link's worker
threads, with the arguments already validated. Handlers reach the daemon through the narrow
:class:`Served` protocol that agent.daemon.supervisor.Daemon satisfies.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Protocol

from agent.config.sections import Config
from agent.daemon.livechecks import LiveChecks
from agent.daemon.swap import Busy, EngineState, Rebuilder
from agent.engines.identity import engine_label, served_precision
from agent.mqtt.publisher import Publisher
from agent.util.cancel import Cancelled
from agent.util.errors import EdgeAgentError, GateFailed, InputError
from calibration.workflow import calibrate as run_calibration

Progress = Callable[[Optional[float], str], None]
Handler = Callable[[Dict[str, Any], Progress], Any]
COMMAND_TIMEOUT_S = 3600.0
HELD_CAMERAS = ("v4l2", "csi")  # sources one process holds: calibrate cannot open them again
CAPTURE_TIMEOUT_S = 60.0  # capture_samples waits this long for its frames


class Served(Protocol):
    """What the handlers use of the daemon."""

    config: Config
    state: EngineState
    rebuilder: Rebuilder
    publisher: Publisher

    def rebuild(
        self, precision: Optional[str], reason: str, produce: Optional[Callable[[], Dict[str, Any]]]
    ) -> Dict[str, Any]: ...

    def build_engine(self, precision: str, config: Optional[Config] = None) -> Dict[str, Any]: ...

    def serving_label(self) -> str: ...

    def status_fields(self) -> Dict[str, Any]: ...

    def require_live(self, command: str) -> LiveChecks: ...

    def set_interval(self, schedule: str, seconds: float) -> Optional[float]: ...

    def run_on_loop(self, name: str, timeout: float = COMMAND_TIMEOUT_S) -> Dict[str, Any]: ...

    def reload(self) -> Dict[str, Any]: ...

    def status(self) -> Dict[str, Any]: ...


def rebuild(daemon: Served, args: Dict[str, Any], progress: Progress) -> Dict[str, Any]:
    """Build the requested (or configured) precision in the background; the summary once it swapped."""
    precision = args.get("precision") or daemon.config.precision
    config = with_calibrator(daemon.config, args.get("calibrator"))
    started = daemon.rebuild(precision, "command", lambda: daemon.build_engine(precision, config))
    progress(
        None, f"building the {precision} engine in the background; inference continues on {daemon.serving_label()}"
    )
    return await_swap(daemon, started, "rebuild")


def rollback(daemon: Served, args: Dict[str, Any], progress: Progress) -> Dict[str, Any]:
    """Swap the previous engine back in, through the same between-inference hand-over as a rebuild."""
    previous = daemon.state.read().get("previous")
    if not previous:
        raise InputError(
            "rollback: there is no previous engine (none has been replaced since the state directory was created)"
        )
    if not Path(str(previous.get("engine_path"))).is_file():
        raise EdgeAgentError(f"rollback: the previous engine's file is gone ({previous.get('engine_path')})")
    precision = str(served_precision(previous))
    started = daemon.rebuild(precision, "rollback", lambda: dict(previous))
    progress(
        None,
        f"loading the previous {engine_label(previous)} engine; inference continues on {daemon.serving_label()}",
    )
    return await_swap(daemon, started, "rollback")


def calibrate(daemon: Served, args: Dict[str, Any], progress: Progress) -> Dict[str, Any]:
    """Collect a calibration set and calibrate on it, in the rebuild slot; publish report/calibration."""

    kind = daemon.config.source.kind
    if args.get("source") is None and kind in HELD_CAMERAS:
        raise InputError(
            f"calibrate: the daemon holds the {kind} camera (a second open fails); pass source=<folder or video "
            "file> on this device"
        )
    listener = progress_listener(progress)
    try:
        result = daemon.rebuilder.run_exclusive(
            "calibrate",
            lambda: run_calibration(daemon.config, args.get("source"), args.get("frames"), listener=listener),
        )
    except Busy as exc:
        raise EdgeAgentError(f"busy: job {exc.job_id} is running") from None
    daemon.publisher.publish_report("calibration", result)
    paths = {
        k: v for k, v in result.items() if isinstance(v, str) and k not in ("calibration_hash", "method", "source")
    }
    return {
        "calibration_hash": result["calibration_hash"],
        "frames": result["frames"],
        "method": result["method"],
        "notes": result["notes"],
        "paths": paths,
    }


def benchmark(daemon: Served, args: Dict[str, Any], progress: Progress) -> Dict[str, Any]:
    return daemon.run_on_loop("benchmark")


def check(daemon: Served, args: Dict[str, Any], progress: Progress) -> Dict[str, Any]:
    return daemon.run_on_loop("check")


def reload_config(daemon: Served, args: Dict[str, Any], progress: Progress) -> Dict[str, Any]:
    return daemon.reload()


def status(daemon: Served, args: Dict[str, Any], progress: Progress) -> Dict[str, Any]:
    return daemon.status()


def set_interval(daemon: Served, args: Dict[str, Any], progress: Progress) -> Dict[str, Any]:
    next_in = daemon.set_interval(args["schedule"], float(args["seconds"]))
    return {"schedule": args["schedule"], "seconds": args["seconds"], "next_job_in_s": next_in}


def capture_samples(daemon: Served, args: Dict[str, Any], progress: Progress) -> Dict[str, Any]:
    live = daemon.require_live("capture_samples")
    progress(None, f"keeping the next {args['count']} live frame(s)")
    return live.capture_samples(int(args["count"]), CAPTURE_TIMEOUT_S)


def label(daemon: Served, args: Dict[str, Any], progress: Progress) -> Dict[str, Any]:
    return daemon.require_live("label").label(args["labels"])


HANDLERS: Dict[str, Callable[[Served, Dict[str, Any], Progress], Any]] = {
    "rebuild": rebuild,
    "calibrate": calibrate,
    "rollback": rollback,
    "benchmark": benchmark,
    "check": check,
    "reload_config": reload_config,
    "status": status,
    "set_interval": set_interval,
    "capture_samples": capture_samples,
    "label": label,
}


def bind(daemon: Served) -> Dict[str, Handler]:
    """The command server's handlers (name -> handler(args, progress)) for ``daemon``."""
    return {name: functools.partial(handler, daemon) for name, handler in HANDLERS.items()}


def await_swap(daemon: Served, started: Mapping[str, Any], what: str) -> Dict[str, Any]:
    """Wait for a started rebuild (or rollback) to swap; its summary, or the reason it did not."""
    if started["status"] == "busy":
        raise EdgeAgentError(f"busy: job {started['job']} is running")
    result = daemon.rebuilder.wait(started["job"], COMMAND_TIMEOUT_S)
    if result is None:
        raise EdgeAgentError(f"{what} {started['job']} did not finish within {COMMAND_TIMEOUT_S:g} s")
    if result["status"] == "rejected":
        raise GateFailed(f"not promoted: {result['error']}; still serving {daemon.serving_label()}")
    if result["status"] == "cancelled":
        raise Cancelled(f"{what} {started['job']} cancelled: the daemon is stopping ({result['error']})")
    if result["status"] != "swapped":
        raise EdgeAgentError(f"{what} failed: {result['error']}")
    return dict(command_summary(result), serving=daemon.status_fields()["engine"])


def with_calibrator(config: Config, method: Optional[str]) -> Config:
    """The configuration with calibration.method replaced (a rebuild command's ``calibrator``)."""
    if not method:
        return config
    return dataclasses.replace(config, calibration=dataclasses.replace(config.calibration, method=method))


def command_summary(result: Mapping[str, Any]) -> Dict[str, Any]:
    """A swapped rebuild in a few fields (the full build report goes out as report/build)."""
    build, swap = result.get("build") or {}, result.get("swap") or {}
    gate = build.get("gate") or {}
    return {
        "status": result["status"],
        "job": result.get("job"),
        "from": swap.get("from"),
        "to": swap.get("to"),
        "swap_gap_ms": swap.get("gap_ms"),
        "max_gap_during_rebuild_ms": swap.get("max_gap_before_ms"),
        "built_precision": build.get("built_precision"),
        "gate_passed": gate.get("passed") if gate else None,
        "per_class_recall_delta": gate.get("per_class_recall_delta"),
        "top1_agreement": gate.get("top1_agreement"),
        "duration_s": result.get("duration_s"),
        "report_path": build.get("report_path"),
    }


def progress_listener(progress: Progress, steps: int = 10) -> Callable[[str, int, int, str], None]:
    """An agent.util.progress listener that forwards about ``steps`` updates to a command's progress."""
    sent = {"step": -1}

    def listen(label: str, done: int, total: int, detail: str) -> None:
        step = done * steps // total if total > 0 else done
        if step > sent["step"]:
            sent["step"] = step
            progress(done / total if total > 0 else None, f"{label}: {done}/{total} {detail}".rstrip())

    return listen
