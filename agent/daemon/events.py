"""The daemon's event policy: which outcomes become events, with which severity, message and details.

Pure functions from what happened to a :class:`Notice` (or None: nothing to report); the
supervisor publishes them with :func:`publish`.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, NamedTuple, Optional

from agent.mqtt.events import Event
from agent.mqtt.publisher import Publisher

SEVERITY_OF_DRIFT = {"warn": "warning", "alert": "error"}


class Notice(NamedTuple):
    """One event as publish_event takes it."""

    event: Event
    severity: str
    message: str
    details: Dict[str, Any]


def publish(publisher: Publisher, notice: Optional[Notice]) -> None:
    """Publish ``notice`` unless it is None."""
    if notice is not None:
        publisher.publish_event(*notice)


def start_not_promoted(precision: str, failure: str) -> Notice:
    """At start the configured precision failed its build or gate; FP32 serves instead."""
    message = f"{precision} engine not promoted: {failure}; serving FP32"
    return Notice(Event.BUILD_FAILED, "error", message, {"precision": precision})


def rebuild_not_promoted(result: Mapping[str, Any]) -> Optional[Notice]:
    """A finished rebuild that did not swap (failed, rejected by the gate); None when it swapped."""
    if result.get("status") == "swapped":
        return None
    details = {k: result.get(k) for k in ("job", "requested_precision", "status", "reason")}
    message = f"{result.get('requested_precision')} engine not promoted: {result.get('error')}"
    return Notice(Event.BUILD_FAILED, "error", message, details)


def engine_swapped(swap: Mapping[str, Any], max_gap_ms: float) -> Notice:
    """A new engine served its first frame; a warning when the gap exceeded daemon.max_swap_gap_ms."""
    within = swap["gap_ms"] <= max_gap_ms
    details = dict(swap, max_swap_gap_ms=max_gap_ms, within_bound=within)
    message = f"now serving {swap['to']} (gap {swap['gap_ms']} ms)"
    return Notice(Event.ENGINE_SWAPPED, "info" if within else "warning", message, details)


def measurement_failed(name: str, error: BaseException) -> Notice:
    """A benchmark or check (``name``) on the serving engine failed."""
    event = Event.BENCHMARK_FAILED if name == "benchmark" else Event.CHECK_FAILED
    return Notice(event, "warning", f"{name}: {error}", {})


def baseline_failed(error: BaseException) -> Notice:
    return Notice(Event.BASELINE_FAILED, "warning", f"no baseline for the promoted engine: {error}", {})


def check_drift(check: Mapping[str, Any]) -> Optional[Notice]:
    """A spot-labeled check whose drift status is warn (warning) or alert (error)."""
    drift = check.get("drift") or {}
    status = drift.get("status")
    if status not in SEVERITY_OF_DRIFT:
        return None
    return Notice(Event.DRIFT, SEVERITY_OF_DRIFT[status], f"per-class recall drift: {status}", {"drift": drift})


def live_label_drift(drift: Optional[Mapping[str, Any]]) -> Optional[Notice]:
    """A new warn / alert of the labeled live frames against the baseline (None: nothing new)."""
    if drift is None:
        return None
    rules = "; ".join(drift["rules_fired"])
    message = f"labeled live frames: per-class recall drift {drift['status']} ({rules})"
    details = {"source": "live_labels", "drift": dict(drift)}
    return Notice(Event.DRIFT, SEVERITY_OF_DRIFT.get(drift["status"], "error"), message, details)


def shadow_disagreement(low: Mapping[str, Any], engine: Optional[str], min_agreement: float) -> Optional[Notice]:
    """Classes whose live agreement with the FP32 reference newly fell below ``min_agreement``."""
    if not low:
        return None
    names = ", ".join(sorted(low))
    message = f"live frames: agreement with the FP32 reference below {min_agreement:g} for {names}"
    details = {"source": "shadow", "engine": engine, "min_agreement": min_agreement, "per_class": dict(low)}
    return Notice(Event.DRIFT, "warning", message, details)


def labels_rejected(outcome: Optional[Mapping[str, Any]]) -> Optional[Notice]:
    """Dropped label lines that were refused (an ingest outcome with errors)."""
    if not outcome or not outcome["errors"]:
        return None
    message = f"{len(outcome['errors'])} dropped label line(s) refused"
    return Notice(Event.LABELS_REJECTED, "warning", message, dict(outcome))


def camera_lost(capture: Mapping[str, Any], reopens_seen: int) -> Optional[Notice]:
    """The source was re-opened since ``reopens_seen`` (capture stats as agent.sources.latest gives them)."""
    if capture["reopens"] <= reopens_seen:
        return None
    return Notice(Event.CAMERA_LOST, "warning", f"the source was re-opened: {capture['last_error']}", dict(capture))


def source_failed(capture: Mapping[str, Any]) -> Notice:
    """A source's capture gave up (it opens but gives no frame: agent.sources.latest's max_failures)."""
    message = f"source {capture['id']} gave up: {capture['last_error']}"
    return Notice(Event.CAMERA_LOST, "error", message, dict(capture, reason="not decodable"))


def config_rejected(errors: List[str]) -> Notice:
    message = "the new configuration is invalid; the running one stays"
    return Notice(Event.CONFIG_REJECTED, "error", message, {"errors": errors})


def config_reloaded(result: Mapping[str, Any]) -> Notice:
    """A reload's outcome (``changed``, ``applied``, ``needs_restart``)."""
    message = f"configuration reloaded; changed: {', '.join(result['changed']) or 'nothing'}"
    return Notice(Event.CONFIG_RELOADED, "info", message, dict(result))


def throttling_changed(was_throttled: Optional[bool], state: Mapping[str, Any]) -> Optional[Notice]:
    """A change of the throttling state (agent.telemetry.throttle.throttling over the samples since
    the last telemetry): a warning when it starts, with the reasons (Jetson clock drops and
    over-current alarms, NVML's throttle reasons), an info when it ends; None otherwise or unknown."""
    now = state.get("throttled")
    if now is None or bool(now) == bool(was_throttled):
        return None
    details = {k: state.get(k) for k in ("reasons", "gpu", "cpu", "over_current_alarms", "nvml_reasons", "samples")}
    if now:
        return Notice(Event.THROTTLING, "warning", "throttling: " + "; ".join(state.get("reasons") or []), details)
    return Notice(Event.THROTTLING, "info", "throttling ended", details)
