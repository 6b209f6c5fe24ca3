"""MQTT payload envelope, topic names and the per-device sequence number.

Every payload is a JSON object with ``schema`` (``edge-agent/<kind>/<major>``), ``device_id``,
``seq`` (monotonic per device, surviving restarts) and ``ts`` (UTC, RFC 3339), followed by the
kind's own fields at the top level. Pure logic apart from :class:`SequenceFile`.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from agent.util.fileio import PathLike, atomic_write_text, quarantine

log = logging.getLogger(__name__)

SCHEMA_MAJOR: Dict[str, int] = {
    "status": 1,
    "telemetry": 1,
    "benchmark": 1,
    "accuracy": 1,
    "build": 1,
    "calibration": 1,
    "event": 1,
    "response": 1,
    "result": 1,
}
REPORT_KINDS = ("benchmark", "accuracy", "build", "calibration")
ENVELOPE_KEYS = ("schema", "device_id", "seq", "ts")


def schema_name(kind: str) -> str:
    """'benchmark' -> 'edge-agent/benchmark/1'."""
    if kind not in SCHEMA_MAJOR:
        raise ValueError(f"unknown payload kind {kind!r}; known: {', '.join(SCHEMA_MAJOR)}")
    return f"edge-agent/{kind}/{SCHEMA_MAJOR[kind]}"


def utc_timestamp(epoch: Optional[float] = None) -> str:
    """RFC 3339 UTC with milliseconds: '2026-11-29T18:30:00.123Z'."""
    moment = _dt.datetime.fromtimestamp(epoch if epoch is not None else _now(), tz=_dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _now() -> float:
    import time

    return time.time()


def parse_timestamp(text: Any) -> float:
    """Seconds since the epoch from an RFC 3339 time with a zone ('Z' or +hh:mm); ValueError otherwise."""
    if not isinstance(text, str) or len(text) > 40:
        raise ValueError(f"expected an RFC 3339 time string, got {text!r}")
    value = text.strip()
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"
    if "T" not in value.upper():
        raise ValueError(f"expected an RFC 3339 time like 2026-01-31T12:00:00Z, got {text!r}")
    # Python 3.8's fromisoformat takes at most 6 fraction digits and no lowercase 't'.
    head, sep, rest = value.replace("t", "T").partition(".")
    if sep:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        rest = rest[:digits][:6].ljust(6, "0") + rest[digits:]
        value = head + "." + rest
    try:
        moment = _dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"expected an RFC 3339 time like 2026-01-31T12:00:00Z, got {text!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"the time {text!r} has no zone; add Z for UTC")
    return moment.timestamp()


def envelope(
    kind: str, device_id: str, seq: int, body: Mapping[str, Any], epoch: Optional[float] = None
) -> Dict[str, Any]:
    """The payload: envelope fields first, then the body's fields.

    A body may carry its own ``ts`` (when it was measured; RFC 3339 with a zone): it becomes the
    envelope's ``ts``, in UTC. The other envelope names are refused in a body.
    """
    clash = [key for key in ENVELOPE_KEYS if key in body and key != "ts"]
    if clash:
        raise ValueError(f"{kind} payload must not set the envelope field(s) {', '.join(clash)}")
    if "ts" in body:
        try:
            epoch = parse_timestamp(body["ts"])
        except ValueError as exc:
            raise ValueError(f"{kind} payload: ts: {exc}") from None
    out: Dict[str, Any] = {"schema": schema_name(kind), "device_id": device_id, "seq": seq, "ts": utc_timestamp(epoch)}
    out.update((key, value) for key, value in body.items() if key != "ts")
    return out


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=str)  # built once: encode runs per result


def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON. NaN and infinities are not JSON: they go out as null (not measured)."""
    try:
        text = _ENCODER.encode(payload)
    except ValueError:
        text = _ENCODER.encode(_finite(payload))
    return text.encode("utf-8")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: _finite(inner) for key, inner in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(inner) for inner in value]
    return value


class Topics:
    """Topic names of one device under ``<prefix>/<device_id>/``."""

    def __init__(self, prefix: str, device_id: str) -> None:
        self.prefix = prefix
        self.device_id = device_id
        self.base = f"{prefix}/{device_id}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def telemetry(self) -> str:
        return f"{self.base}/telemetry"

    @property
    def event(self) -> str:
        return f"{self.base}/event"

    def report(self, kind: str) -> str:
        if kind not in REPORT_KINDS:
            raise ValueError(f"unknown report kind {kind!r}; known: {', '.join(REPORT_KINDS)}")
        return f"{self.base}/report/{kind}"

    def command(self, name: str) -> str:
        return f"{self.base}/cmd/{name}"

    def results(self, source_id: str) -> str:
        """Where one source's inference results go."""
        return f"{self.base}/results/{topic_segment(source_id, 'source id')}"

    def snapshot(self, source_id: str) -> str:
        """Where one source's latest snapshot (a JPEG, retained) goes."""
        return f"{self.base}/snapshot/{topic_segment(source_id, 'source id')}"

    def response(self, name: str) -> str:
        return f"{self.base}/cmd/{name}/response"

    @property
    def command_filter(self) -> str:
        """What the device subscribes to: every command, not the responses."""
        return f"{self.base}/cmd/+"


def topic_segment(value: str, what: str) -> str:
    """``value`` when it can be one topic level (not empty, no '/', '+', '#' or NUL); ValueError otherwise."""
    if not value or any(ch in value for ch in "/+#\0"):
        raise ValueError(f"{what} {value!r} cannot be an MQTT topic level (empty, or has / + # or NUL)")
    return value


def split_topic(prefix: str, topic: str) -> Optional[Tuple[str, str]]:
    """'edge-agent/dev1/report/build' -> ('dev1', 'report/build'); None for other topics."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    device, sep, rest = topic[len(head) :].partition("/")
    return (device, rest) if device and sep and rest else None


class SequenceFile:
    """A monotonic counter that survives restarts, persisted in blocks.

    The file holds the first number not yet handed out by any run; each run reserves ``block``
    numbers at a time with an atomic write, so a crash skips at most one block (gaps are allowed,
    repeats never happen) and a busy publisher writes the file once per ``block`` messages.
    Numbering never starts below the time in microseconds since the epoch at start (``floor``): a
    state directory restored from an old backup holds an old number, but every number handed out
    since is below the clock's microseconds now, as long as the device sent fewer than a million
    messages a second on average and its clock is not behind the time those were sent
    (docs/mqtt.md, "Sequence numbers"). A damaged file (not one integer >= 1) is moved aside
    (``*.corrupt-<time>``) and numbering goes on from the floor; ``recovery`` says so. A
    reservation that cannot be written (disk full) does not stop the numbering: it is written
    again with the next number until it succeeds (a crash before then may repeat the numbers
    handed out meanwhile).
    """

    def __init__(self, path: PathLike, block: int = 1000, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.block = block
        self._clock = clock
        self._lock = threading.Lock()
        self.recovery: Optional[Dict[str, Any]] = None
        self._unsaved = False
        self._next = max(self._read(), self.floor())
        self._reserved = self._next
        self._reserve()

    def floor(self) -> int:
        """The lowest number a run may start at: the clock's microseconds since the epoch (about
        1.8e15 now; JSON numbers stay exact integers below 2**53, about 9e15, until the year 2255)."""
        return int(self._clock() * 1_000_000)

    def _read(self) -> int:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return 1
        try:
            return _parse_next(raw)
        except ValueError as exc:
            moved = quarantine(self.path, self._clock())
            restart = self.floor()
            self.recovery = {"file": str(self.path), "moved_to": str(moved), "reason": str(exc), "next": restart}
            log.error("sequence file %s: %s; moved to %s, numbering goes on from %d", self.path, exc, moved, restart)
            return restart

    def _reserve(self) -> None:
        if not self._unsaved:
            self._reserved += self.block
        try:
            atomic_write_text(self.path, f"{self._reserved}\n")
        except OSError as exc:
            if not self._unsaved:
                log.warning("sequence file %s cannot be written (%s); retrying with every message", self.path, exc)
            self._unsaved = True
        else:
            self._unsaved = False

    def next(self) -> int:
        with self._lock:
            if self._unsaved or self._next >= self._reserved:
                if self._next >= self._reserved:
                    self._unsaved = False  # the next block is due either way
                self._reserve()
            value = self._next
            self._next += 1
            return value


def _parse_next(raw: bytes) -> int:
    """The sequence file's content: one integer >= 1; ValueError saying what is wrong otherwise."""
    try:
        text = raw.decode("ascii").strip()
        value = int(text)
    except (UnicodeDecodeError, ValueError):
        raise ValueError(f"expected one integer (the next sequence number), got {raw[:40]!r}") from None
    if value < 1:
        raise ValueError(f"the next sequence number must be >= 1, got {value}")
    return value
