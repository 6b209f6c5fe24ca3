"""Latency statistics shared by the benchmark, the latest-frame capture and the inference loop (pure)."""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

PERCENTILES = (50, 90, 95, 99)


def latency_stats(samples_ms: Sequence[float]) -> Dict[str, float]:
    """min, mean, p50, p90, p95, p99, max (linear interpolation between ranks)."""
    values = np.asarray(samples_ms, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no latency samples")
    stats = {"min": values.min(), "mean": values.mean(), "max": values.max()}
    for p in PERCENTILES:
        stats[f"p{p}"] = np.percentile(values, p)
    return {k: round(float(stats[k]), 4) for k in ("min", "mean", "p50", "p90", "p95", "p99", "max")}
