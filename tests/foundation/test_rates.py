"""recent_rate: the fps of telemetry, right at camera rates and at file rates beyond the deque's capacity."""

from __future__ import annotations

import collections

import pytest

from agent.util.stats import recent_rate


def stamps(rate: float, seconds: float, capacity: int) -> "collections.deque[float]":
    kept: "collections.deque[float]" = collections.deque(maxlen=capacity)
    kept.extend(i / rate for i in range(1, int(rate * seconds) + 1))
    return kept


def test_a_camera_rate_over_the_window() -> None:
    kept = stamps(30.0, 20.0, 512)  # 150 stamps in 5 s: the deque reaches back over the window
    assert recent_rate(kept, 20.0, 5.0, 0.0) == pytest.approx(30.0, rel=0.01)


def test_a_rate_beyond_the_capacity_is_taken_over_the_span_kept() -> None:
    kept = stamps(2000.0, 10.0, 512)  # 512 stamps cover 0.26 s of the 5 s window
    assert recent_rate(kept, 10.0, 5.0, 0.0) == pytest.approx(2000.0, rel=0.01)


def test_shortly_after_start_and_when_nothing_came() -> None:
    kept = stamps(25.0, 2.0, 512)
    assert recent_rate(kept, 2.0, 5.0, 0.0) == pytest.approx(25.0, rel=0.01)  # over the 2 s since start
    assert recent_rate(kept, 60.0, 5.0, 0.0) is None
    assert recent_rate(collections.deque(maxlen=8), 1.0, 5.0, 0.0) is None
