"""Energy in a time window: from cumulative energy counters where the source has them (NVML's
total energy, RAPL's energy_uj), else from power samples by the trapezoid rule.

Both use monotonic timestamps and interpolate the window's edges between the reads around them,
so they cover exactly [t0, t1]. A counter's difference has no sampling error inside the window
(only its two edge reads are interpolated); a power integral assumes power is linear between
samples. The mean power is the energy over the window's length (a time average, not an average
of samples, which over-weights bursts of closely spaced samples).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

Point = Tuple[float, float]  # (monotonic seconds, milliwatts)
CounterPoint = Tuple[float, Mapping[str, float]]  # (monotonic seconds, {rail: cumulative mJ})
SAMPLED = "sampled_power"


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


def counter_energy_mj(points: Sequence[CounterPoint], t0: float, t1: float, rails: Sequence[str]) -> Optional[float]:
    """mJ between t0 and t1 summed over ``rails`` from their cumulative counters; None unless every
    rail has a counter read at or before t0 and one at or after t1 (then the total is not the
    same composition as the sampled total, and the caller falls back to sampled power)."""
    if not rails or t1 <= t0:
        return None
    energy = 0.0
    for rail in rails:
        series = sorted((t, c[rail]) for t, c in points if rail in c)
        if len(series) < 2 or series[0][0] > t0 or series[-1][0] < t1:
            return None
        energy += _at(series, t1) - _at(series, t0)
    return energy


def energy_source(power_source: Optional[str], from_counters: bool) -> str:
    """'nvml_energy_counter', 'rapl_energy_counter', 'nvml+rapl_energy_counter' or 'sampled_power'."""
    return f"{power_source}_energy_counter" if from_counters and power_source else SAMPLED
