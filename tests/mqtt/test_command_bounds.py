"""Command bounds: answer sizes, the repeated-id history in entries and bytes, deeply nested payloads."""

from __future__ import annotations

import json

import pytest

from agent.mqtt.commands import MAX_DEPTH, CommandServer

from .test_commands import KEY, NOW, Answers, ask, request


def big_label_server(**options) -> CommandServer:
    """A ``label`` handler that answers with about as many bytes as it was given (the field report:
    a 5.9 MB request gave a 27.7 MB answer)."""

    def label(args, progress):
        return {"accepted": list(args["labels"]), "echo": dict(args["labels"])}

    return CommandServer("dev1", KEY, {"label": label}, clock=lambda: NOW, rate_limit_per_min=10**6, **options)


def many_labels(count: int) -> dict:
    return {f"sample-{i:07d}": "face" for i in range(count)}


def test_an_oversized_answer_becomes_a_too_large_error():
    srv = big_label_server(max_response_bytes=100_000)
    final = ask(srv, "label", request("label", {"labels": many_labels(10_000)}, rid="big"))
    assert final["status"] == "error" and final["error"]["code"] == "too_large"
    message = final["error"]["message"]
    assert "commands.max_response_bytes (100000)" in message and "label ran" in message
    assert len(json.dumps(final)) < 1000
    small = ask(srv, "label", request("label", {"labels": many_labels(3)}, rid="small"))
    assert small["status"] == "ok" and len(small["result"]["accepted"]) == 3


def test_history_is_bounded_in_bytes_and_a_dropped_answer_still_refuses_the_repeat():
    srv = big_label_server(history_bytes=200_000, max_response_bytes=10**7)
    payloads = [request("label", {"labels": many_labels(2_000)}, rid=f"r{i}") for i in range(10)]
    for payload in payloads:
        assert ask(srv, "label", payload)["status"] == "ok"
    assert 0 < srv._history.bytes <= 200_000
    assert len(srv._history) == 10
    again = ask(srv, "label", payloads[0])  # its answer was dropped for bytes: refused, not run again
    assert again["status"] == "error" and again["error"]["code"] == "duplicate"
    latest = Answers()
    srv.handle("label", payloads[-1], latest)  # the newest answer is still kept and replayed
    assert latest.wait_final()["status"] == "ok"


def test_history_is_bounded_in_entries():
    srv = CommandServer(
        "dev1", KEY, {"status": lambda a, p: {}}, clock=lambda: NOW, rate_limit_per_min=10**6, history=5
    )
    for i in range(20):
        assert ask(srv, "status", request("status", {}, rid=f"s{i}"))["status"] == "ok"
    assert len(srv._history) == 5


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 10_000])
def test_a_deeply_nested_payload_is_refused_for_its_depth(levels):
    srv = big_label_server()
    nested = "[" * levels + "]" * levels
    payload = ('{"id": "deep", "ts": "2027-01-15T08:00:00Z", "args": {"labels": %s}, "sig": "00"}' % nested).encode()
    final = ask(srv, "label", payload)
    assert final["status"] == "error" and final["error"]["code"] == "bad_request"
    assert final["error"]["message"] == f"the payload is nested deeper than {MAX_DEPTH} levels"


def test_brackets_inside_strings_do_not_count_and_other_bad_payloads_say_what_is_wrong():
    srv = big_label_server()
    fine = request("label", {"labels": {"a": "[" * 100 + '"{'}}, rid="strings")
    assert ask(srv, "label", fine)["status"] == "ok"
    not_utf8 = ask(srv, "label", b'{"id": "x\xff"}')["error"]["message"]
    assert not_utf8.startswith("the payload is not UTF-8 (byte 9: ")
    not_json = ask(srv, "label", b'{"id": "x",}')["error"]["message"]
    assert not_json.startswith("the payload is not JSON: ")
