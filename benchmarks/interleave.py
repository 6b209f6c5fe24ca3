"""Side-by-side throughput: engines take turns in short rounds, so machine noise (other jobs,
clock changes) hits them alike and their ratio stays honest on a shared machine."""

from __future__ import annotations

import os
import statistics
import time
from typing import Any, Dict, Mapping

import numpy as np


def _run_for(engine: Any, feeds: Mapping[str, np.ndarray], seconds: float) -> float:
    """Inferences per second over at least ``seconds`` (and at least 3 runs)."""
    runs, start = 0, time.perf_counter()
    while True:
        engine.infer(feeds)
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and runs >= 3:
            return runs / elapsed


def interleaved(
    engines: Mapping[str, Any], feeds: Mapping[str, np.ndarray], rounds: int = 7, round_s: float = 1.0, warmup: int = 3
) -> Dict[str, Any]:
    """Per engine: median throughput (inferences/s) and median latency (ms) over the rounds; per
    pair with the first engine: the median of the per-round ratios and their range. The order
    alternates every round. Load averages before and after say how busy the machine was."""
    names = list(engines)
    for engine in engines.values():
        for _ in range(warmup):
            engine.infer(feeds)
    load_before = os.getloadavg()
    per_round: Dict[str, list] = {n: [] for n in names}
    for number in range(rounds):
        order = names if number % 2 == 0 else names[::-1]
        for name in order:
            per_round[name].append(_run_for(engines[name], feeds, round_s))
    base = names[0]
    result: Dict[str, Any] = {
        "rounds": rounds,
        "round_s": round_s,
        "loadavg_1m_before": round(load_before[0], 2),
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
        "engines": {},
    }
    for name in names:
        values = per_round[name]
        entry = {
            "throughput_per_s": round(statistics.median(values), 2),
            "latency_ms": round(1000.0 / statistics.median(values), 2),
            "throughput_min": round(min(values), 2),
            "throughput_max": round(max(values), 2),
        }
        if name != base:
            ratios = [v / b for v, b in zip(values, per_round[base])]
            entry.update(
                speedup=round(statistics.median(ratios), 3),
                speedup_min=round(min(ratios), 3),
                speedup_max=round(max(ratios), 3),
            )
        result["engines"][name] = entry
    return result
