"""Latency, throughput, stability and energy of an engine, measured the way trtexec measures.

Method: a time-based warm-up; then measurement in consecutive windows, each lasting at least
``min_duration_s / windows`` and ``ceil(min_iterations / windows)`` iterations, until the last
``windows`` windows agree (throughput and p50 within +-``stability_pct`` of their mean, like
Triton's perf_analyzer) or ``max_duration_s`` has passed. Figures are computed over those last
windows only, so they satisfy both minimums and describe the stable state, not the ramp-up.

Two workloads: ``engine`` (pre-made tensors, one ``infer_timed`` per iteration: comparable with
trtexec and ONNX Runtime's perf tools) and ``pipeline`` (frames from the configured source
through preprocessing, the engine and the decoder). Power, when a sampler is given, is the
difference of the source's energy counters over exactly the measured windows where it has them
(NVML, RAPL), else the trapezoid integral of the sampled total power; ``power.energy_source`` says
which.

Entry points: :func:`run_benchmark` (what ``edge-agent bench`` and the daemon call),
:func:`measure` (the loop itself), :func:`compare_engines` (A/B interleaved in one run).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from agent.backends.base import Engine, StageTimes
from agent.config.sections import BenchConfig
from agent.measure.report import BatchRun, BenchmarkReport
from agent.model.preprocess import make_batch
from agent.telemetry.energy import counter_energy_mj, energy_over, energy_source
from agent.telemetry.throttle import throttling
from agent.util.errors import EdgeAgentError, InputError
from agent.util.stats import latency_stats

Step = Callable[[], StageTimes]  # one iteration; returns its stage times (ms)
FRAME_WAIT = "frame_wait"


@dataclass(frozen=True)
class BenchSettings:
    warmup_s: float = 2.0
    min_duration_s: float = 5.0
    min_iterations: int = 50
    max_duration_s: float = 60.0
    stability_pct: float = 10.0
    windows: int = 3

    @classmethod
    def from_config(cls, bench: BenchConfig, **overrides: Any) -> "BenchSettings":
        settings = cls(
            warmup_s=float(bench.warmup_s),
            min_duration_s=float(bench.min_duration_s),
            min_iterations=int(bench.min_iterations),
            max_duration_s=float(bench.max_duration_s),
            stability_pct=float(bench.stability_pct),
            windows=int(bench.windows),
        )
        return replace(settings, **{k: v for k, v in overrides.items() if v is not None})


# ----- pure statistics ---------------------------------------------------------------------------


def coefficient_of_variation(values: Sequence[float]) -> Optional[float]:
    """Sample standard deviation over the mean; None for fewer than two values or a zero mean."""
    array = np.asarray(values, dtype=np.float64)
    if array.size < 2 or array.mean() == 0:
        return None
    return round(float(array.std(ddof=1) / array.mean()), 5)


def within(values: Sequence[float], tolerance_pct: float) -> bool:
    """Every value within +-tolerance_pct of the values' mean."""
    mean = float(np.mean(values))
    if mean == 0:
        return all(v == 0 for v in values)
    return all(abs(v - mean) / mean * 100.0 <= tolerance_pct for v in values)


@dataclass
class Window:
    """One measurement window: per-iteration latencies and stage times, and its wall-clock span."""

    start: float  # perf_counter seconds
    end: float
    mono_start: float  # time.monotonic() seconds (the telemetry time base)
    mono_end: float
    latencies_ms: List[float]
    stages: List[StageTimes]

    @property
    def duration_s(self) -> float:
        return self.end - self.start

    def throughput(self, batch: int) -> float:
        return len(self.latencies_ms) * batch / self.duration_s if self.duration_s > 0 else 0.0

    def p50(self) -> float:
        return float(np.percentile(self.latencies_ms, 50))


def stability(windows: Sequence[Window], batch: int, tolerance_pct: float) -> Dict[str, Any]:
    """perf_analyzer's rule on the given windows: throughput and p50 each within +-tolerance."""
    throughputs = [w.throughput(batch) for w in windows]
    p50s = [w.p50() for w in windows]
    return {
        "stable": within(throughputs, tolerance_pct) and within(p50s, tolerance_pct),
        "tolerance_pct": tolerance_pct,
        "windows": [
            {
                "throughput_ips": round(t, 3),
                "p50_ms": round(p, 4),
                "iterations": len(w.latencies_ms),
                "duration_s": round(w.duration_s, 4),
            }
            for w, t, p in zip(windows, throughputs, p50s)
        ],
        "throughput_cov": coefficient_of_variation(throughputs),
    }


def mean_stages(stages: Sequence[StageTimes]) -> Dict[str, float]:
    """Mean time of each stage (ms), over the iterations that report it."""
    names: List[str] = []
    for entry in stages:
        names += [n for n in entry if n not in names]
    return {n: round(float(np.mean([s[n] for s in stages if n in s])), 4) for n in names}


def summarize(windows: Sequence[Window], batch: int, tolerance_pct: float, hit_max: bool) -> BatchRun:
    """The result over the given (last) windows."""
    latencies = [v for w in windows for v in w.latencies_ms]
    duration = windows[-1].end - windows[0].start
    verdict = stability(windows, batch, tolerance_pct)
    result = BatchRun(
        batch=batch,
        iterations=len(latencies),
        inferences=len(latencies) * batch,
        duration_s=round(duration, 4),
        throughput_ips=round(len(latencies) * batch / duration, 3),
        latency_ms=latency_stats(latencies),
        cov=coefficient_of_variation(latencies),
        stable=verdict["stable"],
        stability=verdict,
        stages_ms=mean_stages([s for w in windows for s in w.stages]),
        window_monotonic=[windows[0].mono_start, windows[-1].mono_end],
    )
    if not verdict["stable"]:
        verdict["reason"] = (
            f"the last {len(windows)} windows differ by more than +-{tolerance_pct}% "
            + ("and bench.max_duration_s was reached" if hit_max else "")
        ).strip()
    return result


# ----- the measurement loop ----------------------------------------------------------------------


def measure(step: Step, batch: int, settings: BenchSettings) -> BatchRun:
    """Warm up, then measure ``step`` in windows until stable or out of time (see module doc).

    In each iteration the latency is the step's wall time minus its ``frame_wait`` stage (waiting
    for a camera is not processing); throughput is counted on wall time, waits included.
    """
    count = max(2, settings.windows)
    warm_end = time.perf_counter() + settings.warmup_s
    step()  # at least one warm-up call: first-run allocations never land in a window
    while time.perf_counter() < warm_end:
        step()
    window_s = settings.min_duration_s / count
    window_iterations = max(1, math.ceil(settings.min_iterations / count))
    max_duration = max(settings.max_duration_s, settings.min_duration_s)
    windows: List[Window] = []
    started = time.perf_counter()
    while True:
        window = Window(time.perf_counter(), 0.0, time.monotonic(), 0.0, [], [])
        while len(window.latencies_ms) < window_iterations or time.perf_counter() - window.start < window_s:
            t0 = time.perf_counter()
            stages = step()
            elapsed_ms = (time.perf_counter() - t0) * 1000.0
            window.latencies_ms.append(elapsed_ms - stages.get(FRAME_WAIT, 0.0))
            window.stages.append(stages)
        window.end, window.mono_end = time.perf_counter(), time.monotonic()
        windows.append(window)
        if len(windows) < count:
            continue
        last = windows[-count:]
        hit_max = window.end - started >= max_duration
        if stability(last, batch, settings.stability_pct)["stable"] or hit_max:
            result = summarize(last, batch, settings.stability_pct, hit_max)
            result.measured_s = round(window.end - started, 4)
            result.windows_discarded = len(windows) - count
            return result


# ----- workloads ---------------------------------------------------------------------------------


def random_feeds(engine: Engine, model: Any, batch: int, seed: int = 0) -> Dict[str, np.ndarray]:
    """Pre-made input tensors for every engine input: the model's image input at ``batch``,
    other inputs at their declared shape (dynamic dimensions as 1)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for tensor in engine.inputs:
        if tensor.name == model.spec.name:
            shape: Tuple[int, ...] = model.spec.tensor_shape(batch)
        else:
            shape = tuple(d or 1 for d in tensor.shape)
        dtype = np.dtype(tensor.dtype)
        if np.issubdtype(dtype, np.floating):
            feeds[tensor.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[tensor.name] = np.zeros(shape, dtype=dtype)
    return feeds


def engine_step(engine: Engine, feeds: Mapping[str, np.ndarray]) -> Step:
    def step() -> StageTimes:
        return engine.infer_timed(feeds)[1]

    return step


def pipeline_step(pipeline: Any, source: Any, batch: int) -> Step:
    """Frames from ``source`` through preprocess, the engine and the decoder, timed per stage."""

    spec = replace(pipeline.model.spec, batch=batch)

    def step() -> StageTimes:
        t0 = time.perf_counter()
        frames = []
        for _ in range(batch):
            frame = source.read()
            if frame is None:
                raise InputError(f"source.uri: {source.uri} ended during the benchmark; set source.loop: true")
            frames.append(frame.image)
        t1 = time.perf_counter()
        tensor, boxes = make_batch(frames, spec)
        t2 = time.perf_counter()
        outputs, engine_stages = pipeline.engine.infer_timed({spec.name: tensor})
        t3 = time.perf_counter()
        pipeline.decode(outputs, len(frames), boxes)
        t4 = time.perf_counter()
        stages = {FRAME_WAIT: (t1 - t0) * 1e3, "preprocess": (t2 - t1) * 1e3}
        stages.update(engine_stages)
        stages["postprocess"] = (t4 - t3) * 1e3
        return stages

    return step


# ----- power -------------------------------------------------------------------------------------


def attach_power(result: BatchRun, sampler: Any, reason_if_none: Optional[str]) -> None:
    """Add power, energy_mj_per_inference, power_unavailable_reason and (with samples) throttling
    to one batch's result."""

    result.power, result.energy_mj_per_inference, result.power_unavailable_reason = None, None, reason_if_none
    if sampler is None:
        return
    t0, t1 = result.window_monotonic
    sampler.wait_past(t1, timeout_s=3.0 / sampler.rate_hz)
    result.throttling = throttling([s.snapshot for s in sampler.samples(t0, t1)])
    if sampler.telemetry.power_source is None:
        result.power_unavailable_reason = sampler.telemetry.power_unavailable_reason()
        return
    latest = sampler.latest()
    rail = latest.total_rail if latest else None
    report, why = energy_over(sampler.power_points(t0, t1), t0, t1, result.inferences, rail)
    if report is None:
        result.power_unavailable_reason = why
        return
    report["sample_rate_hz"] = sampler.rate_hz
    _use_counters(report, sampler, t0, t1, result.inferences)
    if latest is not None:
        report.update(
            kind=latest.snapshot.get("total_kind"),
            note=latest.snapshot.get("total_note"),
            source=latest.snapshot.get("power_source"),
        )
    result.power = report
    result.energy_mj_per_inference = report["energy_mj_per_inference"]
    result.power_unavailable_reason = None


def _use_counters(report: Dict[str, Any], sampler: Any, t0: float, t1: float, inferences: int) -> None:
    """Replace the sampled energy with the energy counters' difference when every rail of the total
    has a counter over the whole window; the sampled figure stays as ``sampled_energy_mj``."""
    latest = sampler.latest()
    rails = [k for k, v in (latest.snapshot.get("rails") or {}).items() if v is not None] if latest else []
    energy_mj = counter_energy_mj(sampler.counter_points(t0, t1), t0, t1, rails)
    report["energy_source"] = energy_source(sampler.telemetry.power_source, energy_mj is not None)
    if energy_mj is None:
        return
    report["sampled_energy_mj"] = report["energy_mj"]
    report["energy_mj"] = round(energy_mj, 3)
    report["mean_w"] = round(energy_mj / (t1 - t0) / 1000.0, 4)
    report["energy_mj_per_inference"] = round(energy_mj / inferences, 4) if inferences > 0 else None


# ----- the benchmark the CLI and the daemon run --------------------------------------------------


def run_benchmark(
    engine: Engine,
    model: Any,
    settings: BenchSettings,
    batch_sizes: Sequence[int] = (),
    mode: str = "engine",
    pipeline: Any = None,
    source: Any = None,
    sampler: Any = None,
    power_unavailable_reason: Optional[str] = "no telemetry sampler was given",
) -> BenchmarkReport:
    """Measure each batch size; the first one's figures are also the top-level fields.

    ``mode='pipeline'`` needs ``pipeline`` (agent.model.pipeline.Pipeline) and an open ``source``.
    ``sampler`` (agent.telemetry.sampler.Sampler, started) adds power and energy per inference.
    """
    if mode not in ("engine", "pipeline"):
        raise InputError(f"bench.mode: expected engine or pipeline, got {mode!r}")
    if mode == "pipeline" and (pipeline is None or source is None):
        raise InputError("bench.mode pipeline needs the pipeline and an open frame source")
    sizes = list(batch_sizes) or [model.spec.batch]
    runs: List[BatchRun] = []
    for batch in sizes:
        if mode == "engine":
            step = engine_step(engine, random_feeds(engine, model, batch))
        else:
            step = pipeline_step(pipeline, source, batch)
        try:
            result = measure(step, batch, settings)
        except InputError:
            raise
        except EdgeAgentError as exc:
            raise InputError(
                f"bench.batch_sizes: batch {batch} failed ({exc}); the engine must accept this batch size"
            ) from None
        attach_power(result, sampler, power_unavailable_reason)
        runs.append(result)
    return BenchmarkReport.of_runs(runs, mode, method(settings))


def method(settings: BenchSettings) -> Dict[str, Any]:
    return {
        "warmup_s": settings.warmup_s,
        "min_duration_s": settings.min_duration_s,
        "min_iterations": settings.min_iterations,
        "max_duration_s": settings.max_duration_s,
        "windows": settings.windows,
        "stability_pct": settings.stability_pct,
        "timer": "time.perf_counter around each infer_timed call (stages from the backend)",
    }


# ----- A/B in one run ----------------------------------------------------------------------------


def compare_steps(step_a: Step, step_b: Step, batch: int, settings: BenchSettings, rounds: int = 10) -> Dict[str, Any]:
    """Interleave A and B in short blocks (A B B A A B ...) so drifting clocks and temperatures hit
    both alike; report each side's figures and the ratios B over A."""
    if rounds < 2:
        raise ValueError("compare needs at least 2 rounds")
    for step in (step_a, step_b):  # warm both before anything is timed
        end = time.perf_counter() + settings.warmup_s / 2
        step()
        while time.perf_counter() < end:
            step()
    block_s = max(settings.min_duration_s / rounds, 0.0)
    block_iterations = max(1, math.ceil(settings.min_iterations / rounds))
    samples: Dict[str, List[float]] = {"a": [], "b": []}
    spent: Dict[str, float] = {"a": 0.0, "b": 0.0}
    order = [("a", step_a), ("b", step_b)]
    for index in range(rounds):
        pair = order if index % 2 == 0 else order[::-1]
        for name, step in pair:
            start = time.perf_counter()
            count = 0
            while count < block_iterations or time.perf_counter() - start < block_s:
                t0 = time.perf_counter()
                step()
                samples[name].append((time.perf_counter() - t0) * 1000.0)
                count += 1
            spent[name] += time.perf_counter() - start
    sides: Dict[str, Dict[str, Any]] = {}
    for name in ("a", "b"):
        sides[name] = {
            "iterations": len(samples[name]),
            "throughput_ips": round(len(samples[name]) * batch / spent[name], 3),
            "latency_ms": latency_stats(samples[name]),
            "cov": coefficient_of_variation(samples[name]),
        }
    a, b = sides["a"], sides["b"]
    return {
        "a": a,
        "b": b,
        "batch": batch,
        "rounds": rounds,
        "p50_ratio_b_over_a": round(b["latency_ms"]["p50"] / a["latency_ms"]["p50"], 4),
        "throughput_ratio_b_over_a": round(b["throughput_ips"] / a["throughput_ips"], 4),
        "speedup_b_vs_a": round(a["latency_ms"]["p50"] / b["latency_ms"]["p50"], 4),
    }


def compare_engines(
    engine_a: Engine,
    engine_b: Engine,
    model: Any,
    settings: BenchSettings,
    batch: Optional[int] = None,
    rounds: int = 10,
) -> Dict[str, Any]:
    """Two engines of one model on the same pre-made tensors, interleaved in one run."""
    size = batch or model.spec.batch
    feeds = random_feeds(engine_a, model, size)
    return compare_steps(engine_step(engine_a, feeds), engine_step(engine_b, feeds), size, settings, rounds)
