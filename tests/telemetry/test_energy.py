"""Energy per inference: the trapezoid integral over exactly the measurement window."""

from __future__ import annotations

import pytest

from agent.telemetry.energy import energy_over, integrate_mj


def test_constant_power() -> None:
    points = [(0.0, 5000.0), (1.0, 5000.0), (2.0, 5000.0)]
    assert integrate_mj(points, 0.0, 2.0) == pytest.approx(10000.0)


def test_ramp_is_exact_and_edges_are_interpolated() -> None:
    points = [(0.0, 0.0), (10.0, 10000.0)]  # 1000 mW per second
    # from 2 s to 4 s the power goes 2000 -> 4000 mW: 6000 mJ
    assert integrate_mj(points, 2.0, 4.0) == pytest.approx(6000.0)


def test_time_average_not_sample_average() -> None:
    # a burst of samples at high power must not outweigh a long low stretch
    points = [(0.0, 1000.0), (9.0, 1000.0), (9.1, 9000.0), (9.2, 9000.0), (9.3, 1000.0), (10.0, 1000.0)]
    report, why = energy_over(points, 0.0, 10.0, inferences=100, rail="VDD_IN")
    assert why is None and report is not None
    expected_mj = 9.0 * 1000 + 0.1 * 5000 + 0.1 * 9000 + 0.1 * 5000 + 0.7 * 1000
    assert report["energy_mj"] == pytest.approx(expected_mj)
    assert report["mean_w"] == pytest.approx(expected_mj / 10.0 / 1000.0, abs=1e-4)
    assert report["energy_mj_per_inference"] == pytest.approx(expected_mj / 100, abs=1e-3)
    assert report["samples"] == 6 and report["rail"] == "VDD_IN"


def test_a_window_not_covered_is_refused_with_a_reason() -> None:
    points = [(1.0, 1000.0), (2.0, 1000.0)]
    report, why = energy_over(points, 0.0, 2.0, 10, "VDD_IN")
    assert report is None and "do not cover" in (why or "")
    report, why = energy_over([(0.0, 1.0)], 0.0, 1.0, 10, "VDD_IN")
    assert report is None and "at least 2" in (why or "")
    report, why = energy_over(points, 2.0, 2.0, 10, "VDD_IN")
    assert report is None and why == "empty measurement window"
