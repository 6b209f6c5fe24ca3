"""Fuzzed command payloads: every one gets a well-formed answer and the server keeps serving."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Dict, List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.mqtt.commands import COMMANDS, TERMINAL, CommandServer, make_request
from agent.mqtt.messages import envelope

from .schemas import validator

KEY = b"fuzz-key"
NOW = 1_800_000_000.0
RESPONSE = validator("response")
NAMES = st.sampled_from(sorted(COMMANDS) + ["", "reboot", "rebuild/x", "\u00e9t\u00e9", "cmd\x00"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12,
)
ARG_NAMES = sorted({name for spec in COMMANDS.values() for name in spec.args} | {"bogus"})
ARGS = st.dictionaries(st.sampled_from(ARG_NAMES), JSON, max_size=3)
CALLS: List[str] = []
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True, scope="module")
def quiet_refusals():
    """Thousands of refusals are logged as warnings; keep the log capture from dominating the run."""
    logger = logging.getLogger("agent.mqtt.commands")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def _handler(name: str):
    def run(args: Dict[str, Any], progress) -> Dict[str, Any]:
        CALLS.append(name)
        progress(0.5, "half")
        return {"args": args}

    return run


SERVER = CommandServer(
    "dev1", KEY, {name: _handler(name) for name in COMMANDS}, rate_limit_per_min=10**9, clock=lambda: NOW
)


def answers_for(name: str, payload: bytes) -> List[Dict[str, Any]]:
    got: List[Dict[str, Any]] = []
    done = threading.Event()

    def reply(body: Dict[str, Any]) -> None:
        got.append(body)
        if body["status"] in TERMINAL:
            done.set()

    SERVER.handle(name, payload, reply)
    assert done.wait(5), f"no final answer to {payload[:200]!r}: {got}"
    return got


def check_well_formed(name: str, answers: List[Dict[str, Any]]) -> None:
    for body in answers:
        payload = json.loads(json.dumps(envelope("response", "dev1", 1, body), allow_nan=False))
        errors = sorted(RESPONSE.iter_errors(payload), key=str)
        assert not errors, (body, errors[0].message)
        assert body["command"] == name
    assert [a["status"] for a in answers if a["status"] in TERMINAL] == [answers[-1]["status"]]


FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(NAMES, st.binary(max_size=200))
def test_random_bytes(name, payload):
    check_well_formed(name, answers_for(name, payload))


@FUZZ
@given(NAMES, st.dictionaries(st.sampled_from(["id", "ts", "args", "sig", "x"]), JSON, max_size=5))
def test_random_request_shapes(name, request):
    check_well_formed(name, answers_for(name, json.dumps(request).encode()))


@FUZZ
@given(NAMES, ARGS, st.floats(-1000, 1000), st.booleans())
def test_signed_requests_with_random_arguments(name, args, skew, right_key):
    before = len(CALLS)
    request = make_request(KEY if right_key else b"other", "dev1", name, args, epoch=NOW + skew)  # a fresh id
    answers = answers_for(name, json.dumps(request).encode())
    check_well_formed(name, answers)
    final = answers[-1]
    if not right_key:
        assert final["error"]["code"] == "bad_signature" and len(CALLS) == before
    if final["status"] == "ok":
        assert CALLS[-1] == name


def test_the_server_still_serves_after_the_fuzzing():
    request = make_request(KEY, "dev1", "status", {}, epoch=NOW)
    assert answers_for("status", json.dumps(request).encode())[-1]["status"] == "ok"
