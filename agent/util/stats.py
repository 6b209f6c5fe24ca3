"""Latency and rate statistics shared by the benchmark, the latest-frame capture and the inference loop (pure)."""

from __future__ import annotations

from typing import Deque, Dict, Optional, Sequence

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


def recent_rate(stamps: Deque[float], now: float, window_s: float, since: float) -> Optional[float]:
    """Events per second over the last ``window_s`` (or since ``since``, when later) from a bounded deque
    of their time stamps; at rates where the deque's capacity does not reach back over the window,
    over the span the kept stamps cover. None without a recent event."""
    kept = list(stamps)
    recent = [t for t in kept if now - t <= window_s]
    if not recent:
        return None
    span = min(window_s, now - since)
    if stamps.maxlen is not None and len(kept) >= stamps.maxlen and len(recent) == len(kept):
        span = now - recent[0]  # older stamps within the window fell out of the deque
    return round(len(recent) / span, 2) if span > 0 else None
