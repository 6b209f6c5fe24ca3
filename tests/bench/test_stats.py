"""The benchmark's pure statistics: percentiles, CoV, the stability rule, stage means."""

from __future__ import annotations

import pytest

from agent.measure.benchmark import Window, coefficient_of_variation, mean_stages, stability, within
from agent.util.stats import latency_stats


def window(latencies, duration_s: float) -> Window:
    return Window(0.0, duration_s, 0.0, duration_s, list(latencies), [{"compute": v} for v in latencies])


def test_latency_stats_of_1_to_100() -> None:
    stats = latency_stats(list(range(1, 101)))
    assert list(stats) == ["min", "mean", "p50", "p90", "p95", "p99", "max"]
    assert stats["min"] == 1 and stats["max"] == 100 and stats["mean"] == 50.5
    assert stats["p50"] == 50.5 and stats["p90"] == pytest.approx(90.1) and stats["p99"] == pytest.approx(99.01)
    with pytest.raises(ValueError):
        latency_stats([])


def test_cov() -> None:
    assert coefficient_of_variation([2.0, 2.0, 2.0]) == 0.0
    assert coefficient_of_variation([1.0, 3.0]) == pytest.approx(0.70711, abs=1e-5)
    assert coefficient_of_variation([5.0]) is None


def test_within_tolerance() -> None:
    assert within([100.0, 105.0, 95.0], 10.0)
    assert not within([100.0, 125.0, 95.0], 10.0)


def test_stability_needs_both_throughput_and_p50() -> None:
    steady = [window([1.0] * 100, 0.1) for _ in range(3)]
    assert stability(steady, 1, 10.0)["stable"]
    slower_p50 = steady[:2] + [window([1.5] * 100, 0.1)]  # same throughput, p50 +50%
    assert not stability(slower_p50, 1, 10.0)["stable"]
    fewer = steady[:2] + [window([1.0] * 70, 0.1)]  # same p50, throughput -30%
    verdict = stability(fewer, 4, 10.0)
    assert not verdict["stable"]
    assert [w["throughput_ips"] for w in verdict["windows"]] == [4000.0, 4000.0, 2800.0]


def test_stage_means_over_iterations_that_report_them() -> None:
    stages = [{"h2d": 1.0, "compute": 4.0, "d2h": 0.5}, {"h2d": 3.0, "compute": 6.0, "d2h": 0.5}]
    assert mean_stages(stages) == {"h2d": 2.0, "compute": 5.0, "d2h": 0.5}
