"""The daemon's measurements on the serving engine: benchmark, accuracy check, baseline, telemetry.

Benchmark, check and baseline run on the inference thread between two inferences (the engine is
not shared across threads), through a ``HookedEngine`` so each of their inferences feeds the
systemd watchdog like live inference does. Live inference pauses meanwhile: the benchmark's
report says so under ``device_sharing``, with the frames the capture thread dropped.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, Optional, Sequence

from agent.accuracy.check import EngineRun, is_reference, open_reference, record_baseline, run_check
from agent.accuracy.labelsets import load_set
from agent.backends.base import HookedEngine
from agent.config.sections import Config, TelemetryConfig
from agent.engines.identity import EngineIdentity
from agent.measure.benchmark import BenchSettings, run_benchmark
from agent.measure.context import result_context
from agent.model.pipeline import Pipeline
from agent.sources.frames import Frame, RoundRobinSource, Source
from agent.sources.latest import LatestFrameCapture
from agent.telemetry.monitor import telemetry_from_config
from agent.telemetry.sampler import Sampler
from agent.util.errors import InputError

log = logging.getLogger(__name__)
SHARING = (
    "exclusive: the benchmark ran on the inference thread between two live inferences; live "
    "inference paused for its duration while the capture thread kept only the newest frame"
)

NO_SAMPLER = "the telemetry sampler is not running (its start-up failure is in the daemon log)"


class CaptureAsSource(Source):
    """The live capture as a Source (pipeline-mode benchmarks read the camera's newest frames)."""

    def __init__(self, capture: LatestFrameCapture, timeout_s: float) -> None:
        self.capture = capture
        self.timeout_s = timeout_s
        self.uri = "live capture"

    def read(self) -> Optional[Frame]:
        return self.capture.take(self.timeout_s)


def live_frames(captures: Sequence[LatestFrameCapture], timeout_s: float) -> Source:
    """Every live capture's newest frames in turn (a capture with nothing within ``timeout_s`` leaves the turn)."""
    return RoundRobinSource([CaptureAsSource(c, timeout_s) for c in captures], [c.source_id for c in captures])


def with_progress(pipeline: Pipeline, on_progress: Callable[[], None]) -> Pipeline:
    """The same pipeline, its engine reporting each inference as progress."""
    return Pipeline(HookedEngine(pipeline.engine, after=on_progress), pipeline.model, pipeline.decoder)


def benchmark(
    cfg: Config,
    pipeline: Pipeline,
    report: Dict[str, Any],
    captures: Sequence[LatestFrameCapture],
    on_progress: Callable[[], None],
    sampler: Any = None,
) -> Dict[str, Any]:
    """bench.* on the serving engine (engine or pipeline mode), with how it shared the device (reads the
    bench, source and telemetry sections)."""

    timed = with_progress(pipeline, on_progress)
    source = live_frames(captures, cfg.source.read_timeout_s) if cfg.bench.mode == "pipeline" else None
    dropped, started = sum(c.dropped for c in captures), time.monotonic()
    start = sampler.sample_now().snapshot if sampler is not None else None
    result = run_benchmark(
        timed.engine,
        pipeline.model,
        BenchSettings.from_config(cfg.bench),
        cfg.bench.batch_sizes,
        cfg.bench.mode,
        timed,
        source,
        sampler,
        NO_SAMPLER,
    )
    end = sampler.sample_now().snapshot if sampler is not None else None
    described = sampler.telemetry.describe() if sampler is not None else None
    result.context = result_context(
        report, pipeline.engine.info, result.batch, described, start, end, cfg.telemetry.sysfs_root
    )
    result.engine = EngineIdentity.of(report)
    result.device_sharing = {
        "mode": "exclusive",
        "how": SHARING,
        "live_paused_s": round(time.monotonic() - started, 3),
        "frames_dropped_meanwhile": sum(c.dropped for c in captures) - dropped,
    }
    return result.to_json()


def accuracy_check(
    cfg: Config, pipeline: Pipeline, report: Dict[str, Any], on_progress: Callable[[], None]
) -> Dict[str, Any]:
    """The spot-labeled check (agent.accuracy) on the serving engine, with drift against the baseline."""

    if not cfg.accuracy.spot_labels:
        raise InputError("accuracy.spot_labels: not set; there is no spot-labeled set to check")
    return run_check(cfg, EngineRun(with_progress(pipeline, on_progress), EngineIdentity.of(report))).to_json()


def require_spot_set(cfg: Config, pipeline: Pipeline) -> None:
    """Read the spot-labeled set's index (no images yet): InputError naming what is wrong with it.
    Cheap, so a benchmark finds a broken set before a check on it pauses live inference again."""
    accuracy = cfg.accuracy
    load_set(accuracy.spot_labels, accuracy.format, cfg.model.task, pipeline.decoder.labels, accuracy.default_label)


def baseline_of_serving(
    cfg: Config, pipeline: Pipeline, report: Dict[str, Any], on_progress: Callable[[], None], reason: str
) -> Dict[str, Any]:
    """Store the serving engine's results (and the FP32 reference's) on the spot-labeled set as the
    baseline, through agent.accuracy.check.record_baseline; every inference of both calls ``on_progress``."""
    run = EngineRun(with_progress(pipeline, on_progress), EngineIdentity.of(report))
    reference = None
    if not is_reference(run):  # its inferences report progress too (watchdog, cancel points)
        opened = open_reference(cfg.model, cfg.backend)
        reference = EngineRun(with_progress(opened.pipeline, on_progress), opened.identity)
    return record_baseline(cfg, run, reference, reason=reason)


def open_sampler(telemetry: TelemetryConfig) -> Any:
    """The telemetry sampler thread (agent.telemetry), started; None (logged) when it cannot run."""
    try:
        return Sampler(telemetry_from_config(telemetry), telemetry.rate_hz, telemetry.history_s).start()
    except Exception as exc:  # telemetry is optional: the daemon serves without it
        log.warning("telemetry: not available (%s: %s); reports carry no power figures", type(exc).__name__, exc)
        return None


def system_telemetry(sampler: Any) -> Dict[str, Any]:
    """The newest telemetry snapshot (power, temperatures, clocks, load); power null with the reason."""
    if sampler is None:
        return {"total_mw": None, "power_unavailable_reason": NO_SAMPLER}
    sample = sampler.latest() or sampler.sample_now()
    snapshot = dict(sample.snapshot)
    snapshot.pop("t", None)
    if snapshot.get("total_mw") is None:
        snapshot["power_unavailable_reason"] = sampler.telemetry.power_unavailable_reason()
    return snapshot
