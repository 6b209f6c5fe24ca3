"""Remote commands: their argument schemas, request checking, and the server that answers them.

A request is JSON ``{"id", "ts", "args", "sig"}`` (plus ``kid``, the key id, for Ed25519) published
on ``<prefix>/<device>/cmd/<name>``. ``sig`` signs the canonical JSON (sorted keys, no spaces) of
``{"args", "command", "device_id", "id", "ts"}`` (:func:`signing_text`) with the scheme the key
file holds (agent.mqtt.keys: Ed25519 or HMAC-SHA256): binding the signature to the device and the
command stops a request from being replayed elsewhere.

Every request is answered, whatever it holds. Answers are dicts with ``id``, ``command`` and
``status``: ``accepted`` (long commands, at once, with ``job``), ``progress``, then ``ok`` with
``result``; or ``error`` with ``error: {code, message}``; or ``busy`` with the running ``job``.
An ``expired`` error carries ``device_time`` (the device's clock) so that ``edge-agent send
--device-clock`` can sign for it. Answers over ``max_response_bytes`` become ``too_large`` errors;
the answers kept for repeated ids are bounded in entries and in bytes.
The daemon plugs in the work: ``CommandServer(..., handlers={name: handler})`` where
``handler(args, progress) -> result`` and ``progress(fraction_or_None, message)``.
"""

from __future__ import annotations

import collections
import json
import logging
import re
import threading
import time
import uuid
from typing import Any, Callable, Deque, Dict, List, Mapping, NamedTuple, Optional, Tuple, Union

from agent.mqtt.keys import HmacKey, Refused, Signer, Verifier
from agent.mqtt.messages import parse_timestamp, utc_timestamp
from agent.util.fileio import canonical_json
from agent.util.schema import Field, show, validate

log = logging.getLogger(__name__)

Progress = Callable[[Optional[float], str], None]
Handler = Callable[[Dict[str, Any], Progress], Any]
Reply = Callable[[Dict[str, Any]], None]

TERMINAL = ("ok", "error", "busy")
REQUEST_KEYS = ("id", "ts", "args", "sig")
OPTIONAL_KEYS = ("kid",)  # the signing key's id (Ed25519)
MAX_ID_LENGTH = 128
MAX_DEPTH = 32  # JSON nesting a request may have (arrays and objects)
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[{]+|[\]}]+")


class CommandSpec(NamedTuple):
    args: Dict[str, Field]
    long: bool  # answers 'accepted' at once, then progress, then the result
    exclusive: bool  # one at a time among exclusive commands (builds)
    doc: str


COMMANDS: Dict[str, CommandSpec] = {
    "rebuild": CommandSpec(
        {
            "precision": Field(
                "str", None, "Engine precision. null = the configured one.", choices=["fp32", "fp16", "int8", "best"]
            ),
            "calibrator": Field(
                "str",
                None,
                "INT8 calibration method. null = the configured one.",
                choices=["minmax", "entropy", "percentile"],
            ),
        },
        True,
        True,
        "Build the engine again (and calibrate for INT8); promote it if it passes the accuracy gate.",
    ),
    "calibrate": CommandSpec(
        {
            "source": Field("str", None, "Frame source (device, URL, file or folder). null = the configured source."),
            "frames": Field(
                "int", None, "Calibration frames to collect. null = calibration.frames.", minimum=1, maximum=100000
            ),
        },
        True,
        True,
        "Collect a new calibration set.",
    ),
    "rollback": CommandSpec(
        {}, True, True, "Swap the previous engine back in (between two inferences); an error when there is none."
    ),
    "benchmark": CommandSpec(
        {}, True, False, "Measure latency, throughput and power now, with the accuracy that goes with them."
    ),
    "check": CommandSpec({}, True, False, "Check the spot-labeled set for per-class recall drift now."),
    "reload_config": CommandSpec({}, False, False, "Read the configuration file again and apply it."),
    "status": CommandSpec({}, False, False, "Answer with the daemon's state."),
    "set_interval": CommandSpec(
        {
            "schedule": Field("str", "", "Which schedule.", choices=["telemetry", "benchmark", "check"]),
            "seconds": Field("float", 0.0, "New interval; 0 disables.", minimum=0.0, maximum=604800.0),
        },
        False,
        False,
        "Change how often telemetry, benchmarks or checks run (until the next restart).",
    ),
    "capture_samples": CommandSpec(
        {"count": Field("int", 10, "Frames to capture for labeling.", minimum=1, maximum=1000)},
        True,
        False,
        "Capture live frames that an operator can label later.",
    ),
    "label": CommandSpec(
        {
            "labels": Field(
                "map", {}, "Spot labels: captured sample id -> class name.", item=Field("str", "", minimum=1)
            )
        },
        False,
        False,
        "Attach class labels to captured samples (they join the spot-labeled set).",
    ),
}
REQUIRED_ARGS = {"set_interval": ("schedule", "seconds"), "label": ("labels",)}


def signing_text(device_id: str, command: str, request_id: str, ts: str, args: Mapping[str, Any]) -> bytes:
    """The bytes a request's signature covers."""
    return canonical_json(
        {"args": args, "command": command, "device_id": device_id, "id": request_id, "ts": ts}
    ).encode("utf-8")


def sign(key: bytes, device_id: str, command: str, request_id: str, ts: str, args: Mapping[str, Any]) -> str:
    """The hex HMAC-SHA256 of a request under the shared secret ``key``."""
    return HmacKey(key).sign(signing_text(device_id, command, request_id, ts, args))


def make_request(
    key: Union[bytes, Signer],
    device_id: str,
    command: str,
    args: Mapping[str, Any],
    request_id: Optional[str] = None,
    epoch: Optional[float] = None,
) -> Dict[str, Any]:
    """A signed request ready to publish (``key``: an HMAC secret or a signer from agent.mqtt.keys)."""
    signer = HmacKey(key) if isinstance(key, bytes) else key
    rid = request_id or uuid.uuid4().hex
    ts = utc_timestamp(epoch)
    request = {
        "id": rid,
        "ts": ts,
        "args": dict(args),
        "sig": signer.sign(signing_text(device_id, command, rid, ts, args)),
    }
    if signer.kid is not None:
        request["kid"] = signer.kid
    return request


def validate_args(command: str, args: Any) -> List[str]:
    """Every problem with a command's arguments, each naming the argument."""
    spec = COMMANDS[command]
    _, errors = validate(spec.args, args, "args")
    missing = [
        f"args.{name}: required"
        for name in REQUIRED_ARGS.get(command, ())
        if isinstance(args, dict) and name not in args
    ]
    return missing + errors


class CommandError(Exception):
    """A refused request: ``code`` is machine-readable, the message says what and where."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.extra = extra


class _RateLimit:
    """At most ``per_minute`` events per key in any 60 s window of ``clock`` (monotonic: a wall-clock
    jump neither locks commands out nor opens the limit up)."""

    def __init__(self, per_minute: int, clock: Callable[[], float]) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._times: Dict[str, Deque[float]] = collections.defaultdict(collections.deque)

    def allow(self, key: str) -> bool:
        now = self._clock()
        times = self._times[key]
        while times and times[0] <= now - 60.0:
            times.popleft()
        if len(times) >= self.per_minute:
            return False
        times.append(now)
        return True


class CommandServer:
    """Checks, dispatches and answers requests; thread-safe; :meth:`handle` never raises."""

    def __init__(
        self,
        device_id: str,
        key: Union[None, bytes, Verifier],
        handlers: Optional[Mapping[str, Handler]] = None,
        *,
        max_age_s: float = 300.0,
        rate_limit_per_min: int = 10,
        history: int = 1000,
        history_bytes: int = 8_000_000,
        max_response_bytes: int = 1_000_000,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``key``: None (commands disabled), an HMAC secret, or a verifier from agent.mqtt.keys.
        ``clock`` (wall time) judges request freshness; ``monotonic`` paces the rate limit."""
        unknown = set(handlers or {}) - set(COMMANDS)
        if unknown:
            raise ValueError(f"handlers for unknown commands: {', '.join(sorted(unknown))}")
        self.device_id = device_id
        self._verifier: Optional[Verifier] = HmacKey(key) if isinstance(key, bytes) else key
        self._handlers: Dict[str, Handler] = dict(handlers or {})
        self.max_age_s = max_age_s
        self.max_response_bytes = max_response_bytes
        self._clock = clock
        self._rate = _RateLimit(rate_limit_per_min, monotonic)
        self._history = _History(history, history_bytes)
        self._lock = threading.Lock()
        self._exclusive_job: Optional[str] = None
        self._threads: List[threading.Thread] = []
        self.stats: Dict[str, int] = collections.Counter()

    def set_handler(self, command: str, handler: Handler) -> None:
        if command not in COMMANDS:
            raise ValueError(f"unknown command {command!r}")
        self._handlers[command] = handler

    def handle(self, command: str, payload: bytes, reply: Reply) -> None:
        """Answer one request (possibly later, from a worker thread, for long commands)."""
        self.stats["received"] += 1
        target = [reply]  # becomes the recording reply once the request's id is verified
        try:
            self._dispatch(command, payload, target)
        except CommandError as exc:
            self.stats[f"error_{exc.code}"] += 1
            log.warning("command %s refused (%s): %s", show(command)[:80], exc.code, exc)
            self._answer(
                request_id_of(payload),
                command,
                target[0],
                {"status": "error", "error": dict(exc.extra, code=exc.code, message=str(exc))},
            )
        except Exception as exc:  # a bug: answer anyway, and keep serving
            self.stats["error_internal"] += 1
            log.exception("command %s: unexpected failure", show(command)[:80])
            self._answer(
                request_id_of(payload),
                command,
                target[0],
                {"status": "error", "error": {"code": "internal", "message": f"internal error: {exc}"}},
            )

    def wait_idle(self, timeout: float) -> bool:
        """Wait for running command threads (tests, shutdown); True when none is left."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)

    def _dispatch(self, command: str, payload: bytes, target: List[Reply]) -> None:
        request = _parse_request(payload)
        if self._verifier is None:
            raise CommandError("disabled", "commands are disabled on this device (commands.key_file is not set)")
        text = signing_text(self.device_id, command, request["id"], request["ts"], request["args"])
        try:
            self._verifier.verify(text, request["sig"], request.get("kid"))
        except Refused as exc:
            raise CommandError(exc.code, str(exc)) from None
        rid = request["id"]
        answer = self._recorder((command, rid), target[0])
        if answer is None:
            self.stats["repeated"] += 1
            return
        target[0] = answer
        try:
            sent = parse_timestamp(request["ts"])
        except ValueError as exc:
            raise CommandError("bad_request", f"ts: {exc}") from None
        now = self._clock()
        age = now - sent
        if abs(age) > self.max_age_s:
            word = "old" if age > 0 else "far in the future"
            raise CommandError(
                "expired",
                f"ts: the request is {abs(age):.0f} s {word} by this device's clock ({utc_timestamp(now)}); the limit "
                f"is {self.max_age_s:.0f} s (check the clocks, or sign for the device's clock: edge-agent send "
                "--device-clock)",
                device_time=utc_timestamp(now),
            )
        if command not in COMMANDS:
            raise CommandError("unknown_command", f"unknown command {show(command)[:80]}; known: {', '.join(COMMANDS)}")
        if not self._rate.allow(command):
            raise CommandError(
                "rate_limited", f"more than {self._rate.per_minute} {command} requests in the last minute"
            )
        errors = validate_args(command, request["args"])
        if errors:
            raise CommandError("bad_args", "; ".join(errors))
        handler = self._handlers.get(command)
        if handler is None:
            raise CommandError("unavailable", f"{command} is not available on this device")
        args, _ = validate(COMMANDS[command].args, request["args"])
        self._start(rid, command, dict(args), handler, answer)

    def _recorder(self, key: Tuple[str, str], reply: Reply) -> Optional[Reply]:
        """A reply that records answers under (command, id); None (after replaying them) for a repeated id."""
        command, rid = key
        with self._lock:
            seen = self._history.open(key)
            kept = None if seen is None or seen.bodies is None else list(seen.bodies)
        if seen is not None:
            if not kept:
                code, message = (
                    ("duplicate", f"request {rid} was already answered (that answer is no longer kept)")
                    if kept is None
                    else ("in_progress", f"request {rid} is still being processed")
                )
                kept = [{"id": rid, "command": command, "status": "error", "error": {"code": code, "message": message}}]
            for body in kept:
                reply(body)
            return None

        def answer(body: Dict[str, Any]) -> None:
            with self._lock:
                self._history.add(key, body)
            reply(body)

        return answer

    def _start(self, rid: str, command: str, args: Dict[str, Any], handler: Handler, answer: Reply) -> None:
        spec = COMMANDS[command]
        if spec.exclusive:
            with self._lock:
                running = self._exclusive_job
                if running is None:
                    self._exclusive_job = rid
            if running is not None:
                self.stats["busy"] += 1
                self._answer(
                    rid,
                    command,
                    answer,
                    {
                        "status": "busy",
                        "job": running,
                        "error": {"code": "busy", "message": f"job {running} is still running"},
                    },
                )
                return
        if spec.long:
            self._answer(rid, command, answer, {"status": "accepted", "job": rid})
        thread = threading.Thread(
            target=self._run, args=(rid, command, args, handler, answer), name=f"cmd-{command}", daemon=True
        )
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _run(self, rid: str, command: str, args: Dict[str, Any], handler: Handler, answer: Reply) -> None:
        def progress(fraction: Optional[float], message: str) -> None:
            body: Dict[str, Any] = {
                "status": "progress",
                "job": rid,
                "progress": {"fraction": fraction, "message": str(message)},
            }
            self._answer(rid, command, answer, body)

        try:
            result = handler(args, progress)
            json.dumps(result, allow_nan=False, default=str)
            self.stats["ok"] += 1
            self._answer(rid, command, answer, {"status": "ok", "job": rid, "result": result})
        except Exception as exc:
            self.stats["error_failed"] += 1
            log.exception("command %s (%s) failed", command, rid)
            self._answer(
                rid,
                command,
                answer,
                {"status": "error", "job": rid, "error": {"code": "failed", "message": f"{type(exc).__name__}: {exc}"}},
            )
        finally:
            if COMMANDS[command].exclusive:
                with self._lock:
                    if self._exclusive_job == rid:
                        self._exclusive_job = None

    def _answer(self, rid: Optional[str], command: str, reply: Reply, body: Dict[str, Any]) -> None:
        out: Dict[str, Any] = {"id": rid, "command": command}
        out.update(body)
        size = len(json.dumps(out, default=str)) if body["status"] in TERMINAL else 0
        if size > self.max_response_bytes:
            self.stats["too_large"] += 1
            log.warning(
                "command %s (%s): a %d-byte %s answer replaced by too_large", command, rid, size, body["status"]
            )
            message = (
                f"the {body['status']} answer is {size} bytes, over commands.max_response_bytes "
                f"({self.max_response_bytes}); {command} ran, but that answer is not sent"
            )
            error = {"code": "too_large", "message": message}
            out = {"id": rid, "command": command, "status": "error", "job": body.get("job"), "error": error}
        try:
            reply(out)
        except Exception:
            self.stats["reply_failed"] += 1
            log.exception("could not send the answer to %s (%s)", command, rid)


class _Record:
    """The answers given to one request id; ``bodies`` None once dropped to keep the history's bytes."""

    __slots__ = ("bodies", "size")

    def __init__(self) -> None:
        self.bodies: Optional[List[Dict[str, Any]]] = []
        self.size = 0


class _History:
    """Answers by (command, id), at most ``entries`` ids and ``max_bytes`` of kept answers (as JSON).

    The oldest ids go first; past the byte bound the oldest answers are dropped but their ids are
    kept, so a repeated id is still refused (``duplicate``) rather than run again. Not thread-safe."""

    def __init__(self, entries: int, max_bytes: int) -> None:
        self.entries = entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._records: "collections.OrderedDict[Tuple[str, str], _Record]" = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def open(self, key: Tuple[str, str]) -> Optional[_Record]:
        """The record of a repeated key, or None after starting a new one."""
        seen = self._records.get(key)
        if seen is not None:
            return seen
        self._records[key] = _Record()
        while len(self._records) > self.entries:
            self.bytes -= self._records.popitem(last=False)[1].size
        return None

    def add(self, key: Tuple[str, str], body: Dict[str, Any]) -> None:
        record = self._records.get(key)
        if record is None or record.bodies is None:
            return
        size = len(json.dumps(body, default=str))
        record.bodies.append(body)
        record.size += size
        self.bytes += size
        for old in self._records.values():
            if self.bytes <= self.max_bytes:
                break
            if old.bodies is not None:
                self.bytes -= old.size
                old.bodies, old.size = None, 0


def _depth(text: str) -> int:
    """How deeply arrays and objects nest in the JSON ``text`` (brackets inside strings do not count)."""
    depth = deepest = 0
    for run in _BRACKETS.findall(_STRINGS.sub("", text)):
        depth += len(run) if run[0] in "[{" else -len(run)
        deepest = max(deepest, depth)
    return deepest


def _parse_request(payload: bytes) -> Dict[str, Any]:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CommandError("bad_request", f"the payload is not UTF-8 (byte {exc.start}: {exc.reason})") from None
    if _depth(text) > MAX_DEPTH:
        raise CommandError("bad_request", f"the payload is nested deeper than {MAX_DEPTH} levels")
    try:
        request = json.loads(text)
    except ValueError as exc:
        raise CommandError("bad_request", f"the payload is not JSON: {exc}") from None
    if not isinstance(request, dict):
        raise CommandError("bad_request", f"the payload must be a JSON object with {', '.join(REQUEST_KEYS)}")
    problems = [f"{key}: missing" for key in REQUEST_KEYS if key not in request]
    problems += [f"{key}: unknown key" for key in request if key not in REQUEST_KEYS + OPTIONAL_KEYS]
    rid = request.get("id")
    if "id" in request and not (isinstance(rid, str) and 0 < len(rid) <= MAX_ID_LENGTH and rid.isprintable()):
        problems.append(f"id: expected a printable string of 1-{MAX_ID_LENGTH} characters, got {show(rid)[:80]}")
    if "ts" in request and not isinstance(request["ts"], str):
        problems.append(f"ts: expected an RFC 3339 time string, got {show(request['ts'])[:80]}")
    if "args" in request and not isinstance(request["args"], dict):
        problems.append(f"args: expected an object, got {show(request['args'])[:80]}")
    if "sig" in request and not isinstance(request["sig"], str):
        problems.append(f"sig: expected a hex string, got {show(request['sig'])[:80]}")
    if "kid" in request and not isinstance(request["kid"], str):
        problems.append(f"kid: expected a key id string, got {show(request['kid'])[:80]}")
    if problems:
        raise CommandError("bad_request", "; ".join(problems))
    return request


def request_id_of(payload: bytes) -> Optional[str]:
    """The request's id when the payload is well-formed enough to carry one (for error answers)."""
    try:
        rid = json.loads(payload.decode("utf-8")).get("id")
    except Exception:
        return None
    return rid if isinstance(rid, str) and 0 < len(rid) <= MAX_ID_LENGTH and rid.isprintable() else None
