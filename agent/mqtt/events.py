"""The names of the events a device publishes on ``<prefix>/<device>/event`` (docs/schemas/event.json)."""

from __future__ import annotations

import enum


class Event(str, enum.Enum):
    """An event's name; the value is what goes on the wire."""

    BUILD_FAILED = "build_failed"  # an engine was not promoted (build, gate, load or warm-up failed)
    ENGINE_SWAPPED = "engine_swapped"  # a new engine served its first frame
    BASELINE_FAILED = "baseline_failed"  # no accuracy baseline for the promoted engine
    BENCHMARK_FAILED = "benchmark_failed"
    CHECK_FAILED = "check_failed"
    DRIFT = "drift"  # per-class recall drift, or live agreement with the FP32 reference below the threshold
    CAMERA_LOST = "camera_lost"  # the source was re-opened
    LABELS_REJECTED = "labels_rejected"  # dropped label lines refused
    CONFIG_REJECTED = "config_rejected"
    CONFIG_RELOADED = "config_reloaded"
    OUTBOX_DROPPED = "outbox_dropped"  # the outbox's bounds evicted messages
    STATE_CORRUPT = "state_corrupt"  # a damaged state file was moved aside and recreated
    STORAGE_FULL = "storage_full"  # messages that could not be stored (disk full) were dropped
    THROTTLING = "throttling"  # the device started (warning) or stopped (info) throttling its clocks
    OBJECT = "object"  # a tracked class appeared on a source (start) or left it (end, with its duration)
