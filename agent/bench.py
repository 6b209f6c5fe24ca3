"""Latency and throughput of an engine on pre-made tensors."""

from __future__ import annotations

import time
from typing import Any, Dict, List, Mapping

import numpy as np

from .backends.base import Engine


def percentiles(samples_ms: List[float]) -> Dict[str, float]:
    values = np.asarray(samples_ms, dtype=np.float64)
    stats = {"min": values.min(), "mean": values.mean(), "max": values.max()}
    for p in (50, 90, 95, 99):
        stats[f"p{p}"] = float(np.percentile(values, p))
    return {k: round(float(v), 4) for k, v in stats.items()}


def bench_engine(
    engine: Engine, feeds: Mapping[str, np.ndarray], batch: int, warmup_s: float, min_duration_s: float, min_iterations: int
) -> Dict[str, Any]:
    """Warm up for ``warmup_s``, then run until both ``min_duration_s`` and ``min_iterations`` are met."""
    end_warmup = time.perf_counter() + warmup_s
    while time.perf_counter() < end_warmup:
        engine.infer(feeds)
    latencies: List[float] = []
    started = time.perf_counter()
    while len(latencies) < min_iterations or time.perf_counter() - started < min_duration_s:
        t0 = time.perf_counter()
        engine.infer(feeds)
        latencies.append((time.perf_counter() - t0) * 1000.0)
    duration = time.perf_counter() - started
    return {
        "latency_ms": percentiles(latencies),
        "throughput_ips": round(len(latencies) * batch / duration, 3),
        "batch": batch,
        "iterations": len(latencies),
        "duration_s": round(duration, 3),
    }
