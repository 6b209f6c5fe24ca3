"""Energy in a time window from power samples: the trapezoid rule over monotonic timestamps.

The window's edges are interpolated between the samples around them, so the integral covers
exactly [t0, t1]; the mean power is that energy over the window's length (a time average, not
an average of samples, which over-weights bursts of closely spaced samples).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

Point = Tuple[float, float]  # (monotonic seconds, milliwatts)


def _at(points: Sequence[Point], t: float) -> float:
    """Power at time t by linear interpolation (held constant outside the samples)."""
    if t <= points[0][0]:
        return points[0][1]
    if t >= points[-1][0]:
        return points[-1][1]
    for (ta, pa), (tb, pb) in zip(points, points[1:]):
        if ta <= t <= tb:
            return pa if tb == ta else pa + (pb - pa) * (t - ta) / (tb - ta)
    return points[-1][1]


def integrate_mj(points: Sequence[Point], t0: float, t1: float) -> float:
    """Millijoules between t0 and t1 (mW x s = mJ)."""
    inside = [(t, p) for t, p in points if t0 < t < t1]
    path = [(t0, _at(points, t0))] + inside + [(t1, _at(points, t1))]
    return sum((tb - ta) * (pa + pb) / 2.0 for (ta, pa), (tb, pb) in zip(path, path[1:]))


def energy_over(
    points: Sequence[Point], t0: float, t1: float, inferences: int, rail: Optional[str], min_samples: int = 2
) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """(power report, None), or (None, why not) when the window is not covered by samples.

    The window must be bracketed: a sample at or before t0 and one at or after t1 (allowing
    one sampling period of slack is the caller's choice of t0/t1), and at least ``min_samples``.
    """
    usable: List[Point] = sorted((t, p) for t, p in points if p is not None)
    if t1 <= t0:
        return None, "empty measurement window"
    if len(usable) < min_samples:
        return None, f"{len(usable)} power sample(s) in the measurement window; at least {min_samples} needed"
    if usable[0][0] > t0 or usable[-1][0] < t1:
        return None, "power samples do not cover the whole measurement window (sampler started late or stopped early)"
    energy_mj = integrate_mj(usable, t0, t1)
    counted = sum(1 for t, _ in usable if t0 <= t <= t1)
    report = {
        "rail": rail,
        "mean_w": round(energy_mj / (t1 - t0) / 1000.0, 4),
        "energy_mj": round(energy_mj, 3),
        "window_s": round(t1 - t0, 4),
        "samples": counted,
        "energy_mj_per_inference": round(energy_mj / inferences, 4) if inferences > 0 else None,
    }
    return report, None
