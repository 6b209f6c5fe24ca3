"""The measurement loop's rules, on steps whose cost the test controls."""

from __future__ import annotations

import time

import pytest

from agent.measure.benchmark import BenchSettings, compare_steps, measure


def sleeper(seconds: float):
    def step():
        time.sleep(seconds)
        return {"compute": seconds * 1000}

    return step


def test_both_minimums_are_met_by_the_reported_windows() -> None:
    settings = BenchSettings(warmup_s=0.05, min_duration_s=0.3, min_iterations=90, max_duration_s=5.0, windows=3)
    result = measure(sleeper(0.001), 2, settings).to_json()
    assert result["iterations"] >= 90  # 30 per window
    assert result["duration_s"] >= 0.3
    assert result["inferences"] == result["iterations"] * 2
    assert result["throughput_ips"] == pytest.approx(result["inferences"] / result["duration_s"], rel=1e-3)
    assert len(result["stability"]["windows"]) == 3
    assert result["latency_ms"]["min"] >= 1.0


def test_iterations_dominate_when_the_duration_is_short() -> None:
    settings = BenchSettings(warmup_s=0.0, min_duration_s=0.0, min_iterations=30, windows=3)
    result = measure(sleeper(0.0), 1, settings).to_json()
    assert result["iterations"] == 30


def test_a_drifting_workload_is_reported_unstable_after_max_duration() -> None:
    state = {"calls": 0}

    def slowing():
        state["calls"] += 1
        time.sleep(0.0002 * state["calls"])  # every call slower than the last
        return {"compute": 0.0}

    settings = BenchSettings(
        warmup_s=0.0, min_duration_s=0.15, min_iterations=6, max_duration_s=0.4, windows=3, stability_pct=5.0
    )
    result = measure(slowing, 1, settings).to_json()
    assert result["stable"] is False
    assert "max_duration_s" in result["stability"]["reason"]
    assert result["measured_s"] >= 0.4


def test_frame_wait_is_not_latency_but_counts_for_throughput() -> None:
    def waits():
        time.sleep(0.004)
        return {"frame_wait": 4.0, "compute": 0.0}

    settings = BenchSettings(warmup_s=0.0, min_duration_s=0.1, min_iterations=9, windows=3)
    result = measure(waits, 1, settings).to_json()
    assert result["latency_ms"]["p50"] < 2.0  # the 4 ms wait is taken out
    assert result["throughput_ips"] < 260  # but one frame every >= 4 ms
    assert result["stages_ms"]["frame_wait"] == 4.0


def test_compare_interleaves_a_and_b() -> None:
    order = []

    def tag(name, seconds):
        def step():
            order.append(name)
            time.sleep(seconds)
            return {}

        return step

    settings = BenchSettings(warmup_s=0.0, min_duration_s=0.0, min_iterations=8, windows=3)
    result = compare_steps(tag("a", 0.004), tag("b", 0.002), 1, settings, rounds=4)
    timed = order[2:]  # one warm-up call each first
    blocks = [timed[i] for i in range(0, len(timed), 2)]
    assert blocks == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert result["a"]["iterations"] == result["b"]["iterations"] == 8
    assert 0.3 < result["p50_ratio_b_over_a"] < 0.9  # B sleeps half as long
    assert result["speedup_b_vs_a"] > 1.0
