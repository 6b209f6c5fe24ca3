"""The command server's rules, driven directly (no broker): signing, replays, limits, jobs."""

from __future__ import annotations

import json
import threading
from typing import Any, Dict, List

import pytest

from agent.mqtt.commands import COMMANDS, CommandServer, make_request, sign, validate_args

KEY = b"k" * 32
NOW = 1_800_000_000.0


class Answers:
    def __init__(self) -> None:
        self.items: List[Dict[str, Any]] = []
        self.changed = threading.Condition()

    def __call__(self, body: Dict[str, Any]) -> None:
        json.dumps(body, allow_nan=False)  # every answer is JSON
        with self.changed:
            self.items.append(body)
            self.changed.notify_all()

    def wait_final(self, timeout: float = 5.0) -> Dict[str, Any]:
        with self.changed:
            assert self.changed.wait_for(
                lambda: any(a["status"] in ("ok", "error", "busy") for a in self.items), timeout
            )
        return [a for a in self.items if a["status"] in ("ok", "error", "busy")][0]


def server(handlers=None, **options) -> CommandServer:
    options.setdefault("clock", lambda: NOW)
    return CommandServer("dev1", KEY, handlers or {}, **options)


def request(
    command: str, args: Dict[str, Any], key: bytes = KEY, device: str = "dev1", epoch: float = NOW, rid=None
) -> bytes:
    return json.dumps(make_request(key, device, command, args, request_id=rid, epoch=epoch)).encode()


def ask(srv: CommandServer, command: str, payload: bytes) -> Dict[str, Any]:
    answers = Answers()
    srv.handle(command, payload, answers)
    return answers.wait_final()


def test_long_command_answers_accepted_progress_then_result():
    def rebuild(args, progress):
        progress(0.25, "calibrating")
        progress(0.75, "building")
        return {"precision": args["precision"], "calibrator": args["calibrator"]}

    srv = server({"rebuild": rebuild})
    answers = Answers()
    srv.handle("rebuild", request("rebuild", {"precision": "int8", "calibrator": "entropy"}, rid="r1"), answers)
    final = answers.wait_final()
    assert [a["status"] for a in answers.items] == ["accepted", "progress", "progress", "ok"]
    assert answers.items[0]["job"] == "r1" and answers.items[1]["progress"] == {
        "fraction": 0.25,
        "message": "calibrating",
    }
    assert final["result"] == {"precision": "int8", "calibrator": "entropy"}


def test_short_command_answers_once():
    srv = server({"status": lambda args, progress: {"state": "running"}})
    answers = Answers()
    srv.handle("status", request("status", {}), answers)
    answers.wait_final()
    srv.wait_idle(5)
    assert [a["status"] for a in answers.items] == ["ok"]


@pytest.mark.parametrize(
    "command, payload, code",
    [
        ("rebuild", b"\xff\xfe", "bad_request"),
        ("rebuild", b"[1, 2]", "bad_request"),
        ("rebuild", json.dumps({"id": "a", "ts": "x", "args": {}}).encode(), "bad_request"),
        ("rebuild", request("rebuild", {}, key=b"wrong"), "bad_signature"),
        ("rebuild", request("rebuild", {}, device="dev2"), "bad_signature"),
        ("rebuild", request("rebuild", {}, epoch=NOW - 301), "expired"),
        ("rebuild", request("rebuild", {}, epoch=NOW + 301), "expired"),
        ("explode", request("explode", {}), "unknown_command"),
        ("rebuild", request("rebuild", {"precision": "int4"}), "bad_args"),
        ("rebuild", request("rebuild", {"colour": "red"}), "bad_args"),
        ("set_interval", request("set_interval", {"schedule": "telemetry"}), "bad_args"),
        ("calibrate", request("calibrate", {}), "unavailable"),
    ],
)
def test_refused_requests_get_an_error_and_no_handler_call(command, payload, code):
    calls = []
    srv = server({"rebuild": lambda args, progress: calls.append(args)})
    final = ask(srv, command, payload)
    assert final["status"] == "error" and final["error"]["code"] == code, final
    assert final["error"]["message"]
    assert calls == []


def test_bad_args_message_names_the_argument_and_value():
    final = ask(server({"rebuild": lambda a, p: None}), "rebuild", request("rebuild", {"precision": "int4"}))
    assert "args.precision" in final["error"]["message"] and '"int4"' in final["error"]["message"]


def test_a_request_signed_for_another_command_is_refused():
    payload = json.loads(request("status", {}))
    calls = []
    final = ask(server({"rebuild": lambda a, p: calls.append(a)}), "rebuild", json.dumps(payload).encode())
    assert final["error"]["code"] == "bad_signature" and calls == []


def test_a_repeated_id_gets_the_first_answer_again_without_running_twice():
    calls = []
    srv = server({"rebuild": lambda args, progress: calls.append(args) or {"n": len(calls)}})
    first = Answers()
    payload = request("rebuild", {"precision": "fp16"}, rid="same")
    srv.handle("rebuild", payload, first)
    first.wait_final()
    srv.wait_idle(5)
    again = Answers()
    srv.handle("rebuild", payload, again)
    assert again.items == first.items and calls == [{"precision": "fp16", "calibrator": None}]


def test_a_repeated_id_of_a_refused_request_gets_the_same_error():
    srv = server({"rebuild": lambda a, p: None})
    payload = request("rebuild", {"precision": "int4"}, rid="bad-args")
    assert ask(srv, "rebuild", payload) == ask(srv, "rebuild", payload)


def test_one_build_at_a_time_the_other_gets_busy_with_the_running_job():
    release = threading.Event()
    srv = server({"rebuild": lambda a, p: release.wait(5) and {"done": True}, "calibrate": lambda a, p: {"frames": 1}})
    running = Answers()
    srv.handle("rebuild", request("rebuild", {}, rid="job-1"), running)
    busy = ask(srv, "calibrate", request("calibrate", {}, rid="job-2"))
    assert busy["status"] == "busy" and busy["job"] == "job-1"
    release.set()
    assert running.wait_final()["status"] == "ok"
    srv.wait_idle(5)
    assert ask(srv, "calibrate", request("calibrate", {}, rid="job-3"))["status"] == "ok"


def test_rate_limit_per_command():
    now = [NOW]
    srv = server(
        {"status": lambda a, p: {}, "check": lambda a, p: {"passed": True}},
        rate_limit_per_min=2,
        clock=lambda: now[0],
        monotonic=lambda: now[0],
    )
    codes = [ask(srv, "status", request("status", {}, epoch=now[0]))["status"] for _ in range(3)]
    assert codes == ["ok", "ok", "error"]
    assert ask(srv, "check", request("check", {}, epoch=now[0]))["status"] == "ok"  # per command
    now[0] += 61
    assert ask(srv, "status", request("status", {}, epoch=now[0]))["status"] == "ok"


def test_a_failing_handler_gives_an_error_answer_and_the_server_keeps_serving():
    def broken(args, progress):
        raise RuntimeError("disk full")

    srv = server({"benchmark": broken, "status": lambda a, p: {"ok": 1}})
    final = ask(srv, "benchmark", request("benchmark", {}))
    assert final["error"]["code"] == "failed" and "disk full" in final["error"]["message"]
    assert ask(srv, "status", request("status", {}))["status"] == "ok"


def test_without_a_key_every_request_is_refused():
    srv = CommandServer("dev1", None, {"status": lambda a, p: {}})
    answers = Answers()
    srv.handle("status", request("status", {}), answers)
    assert answers.wait_final()["error"]["code"] == "disabled"


def test_signature_is_hmac_sha256_over_the_documented_canonical_text():
    import hashlib
    import hmac

    text = b'{"args":{"precision":"int8"},"command":"rebuild","device_id":"dev1","id":"r1","ts":"2026-01-01T00:00:00Z"}'
    assert (
        sign(KEY, "dev1", "rebuild", "r1", "2026-01-01T00:00:00Z", {"precision": "int8"})
        == hmac.new(KEY, text, hashlib.sha256).hexdigest()
    )


def test_every_command_has_a_schema_that_accepts_its_defaults():
    for name in COMMANDS:
        required = {"set_interval": {"schedule": "telemetry", "seconds": 5}, "label": {"labels": {"s1": "face"}}}.get(
            name, {}
        )
        assert validate_args(name, required) == [], name


def test_handlers_for_unknown_commands_are_refused_at_construction():
    with pytest.raises(ValueError, match="reboot"):
        CommandServer("dev1", KEY, {"reboot": lambda a, p: None})
