"""The fleet simulation's payloads have the schemas' shapes (docs/schemas), so its load is a real fleet's."""

from __future__ import annotations

import random

import pytest

from agent.mqtt.messages import envelope
from benchmarks.fleet_sim import accuracy_body, benchmark_body, telemetry_body
from tests.mqtt.schemas import validator


@pytest.mark.parametrize(
    "kind,make",
    [
        ("telemetry", lambda rng: telemetry_body(rng, 1234)),
        ("benchmark", benchmark_body),
        ("accuracy", accuracy_body),
    ],
)
def test_simulated_payloads_validate_against_their_schema(kind: str, make) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(7)
    for seq in range(1, 20):
        payload = envelope(kind, "sim00001", seq, make(rng))
        errors = [e.message for e in validator(kind).iter_errors(payload)]
        assert errors == [], errors
