"""edge-agent bench: latency, throughput, stability and energy per inference of the configured engine.

Engine mode times the engine on pre-made tensors (comparable with trtexec); pipeline mode takes
frames from the configured source through preprocessing, the engine and the decoder.
--compare A,B measures two precisions of the model in one run, interleaved, as ratios.
"""

from __future__ import annotations

import argparse
from typing import Any, Dict, List, Mapping, Tuple

from agent.build import engine as building
from agent.cli.common import add_common, emit, load
from agent.config.sections import Config
from agent.measure.benchmark import BenchSettings, compare_engines, run_benchmark
from agent.measure.context import result_context
from agent.model.pipeline import Pipeline, make_decoder
from agent.sources.open import open_sources
from agent.telemetry.monitor import telemetry_from_config
from agent.telemetry.sampler import Sampler
from agent.util.errors import InputError

PRECISIONS = ("fp32", "fp16", "int8", "best")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench", help="measure latency, throughput and energy per inference", description=__doc__
    )
    add_common(parser)
    parser.add_argument("--precision", choices=PRECISIONS, help="override the configured precision")
    parser.add_argument("--mode", choices=["engine", "pipeline"], help="override bench.mode")
    parser.add_argument(
        "--batch",
        type=int,
        action="append",
        metavar="N",
        help="batch size to measure (repeatable; default: bench.batch_sizes)",
    )
    parser.add_argument("--warmup", type=float, metavar="S", help="warm-up time (default: bench.warmup_s)")
    parser.add_argument(
        "--duration", type=float, metavar="S", help="minimum measuring time (default: bench.min_duration_s)"
    )
    parser.add_argument(
        "--iterations", type=int, metavar="N", help="minimum iterations (default: bench.min_iterations)"
    )
    parser.add_argument(
        "--compare", metavar="A,B", help="compare two precisions interleaved in one run, e.g. fp32,int8"
    )
    parser.add_argument("--no-power", action="store_true", help="do not sample power")
    parser.set_defaults(handler=run)


def _settings(cfg: Config, args: argparse.Namespace) -> BenchSettings:
    for name in ("warmup", "duration"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise InputError(f"--{name}: expected a time >= 0, got {value}")
    if args.iterations is not None and args.iterations < 1:
        raise InputError(f"--iterations: expected a positive number, got {args.iterations}")
    if any(b < 1 for b in args.batch or []):
        raise InputError(f"--batch: expected positive batch sizes, got {args.batch}")
    return BenchSettings.from_config(
        cfg.bench, warmup_s=args.warmup, min_duration_s=args.duration, min_iterations=args.iterations
    )


def _human(r: Mapping[str, Any]) -> str:
    if "compare" in r:
        c = r["compare"]
        a, b = r["precisions"]
        return (
            f"{a} vs {b}, batch {c['batch']}, {c['rounds']} interleaved rounds\n"
            f"p50 ms: {a} {c['a']['latency_ms']['p50']}  {b} {c['b']['latency_ms']['p50']}  ({b}/{a} "
            f"{c['p50_ratio_b_over_a']})\n"
            f"inferences/s: {a} {c['a']['throughput_ips']}  {b} {c['b']['throughput_ips']}  ({b}/{a} "
            f"{c['throughput_ratio_b_over_a']})"
        )
    lat, ctx = r["latency_ms"], r["context"]
    lines = [
        f"{ctx['backend']} {ctx['precision']} {r['mode']} mode, batch {r['batch']}: {r['throughput_ips']} "
        "inferences/s, "
        f"{r['iterations']} iterations in {r['duration_s']} s, {'stable' if r['stable'] else 'NOT stable'} (cov "
        f"{r['cov']})",
        "latency ms: " + "  ".join(f"{k} {lat[k]}" for k in ("min", "mean", "p50", "p90", "p95", "p99", "max")),
        "stages ms: " + "  ".join(f"{k} {v}" for k, v in r["stages_ms"].items()),
    ]
    if len(r["throughput_by_batch"]) > 1:
        lines.append("inferences/s by batch: " + "  ".join(f"{b}: {v}" for b, v in r["throughput_by_batch"].items()))
    if r["power"]:
        p = r["power"]
        lines.append(
            f"power: {p['mean_w']} W mean on {p['rail']} ({p['samples']} samples), {r['energy_mj_per_inference']} "
            "mJ/inference"
        )
    else:
        lines.append(f"power: unavailable: {r['power_unavailable_reason']}")
    return "\n".join(lines)


def _precisions(text: str) -> Tuple[str, str]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or any(p not in PRECISIONS for p in parts):
        raise InputError(f"--compare: expected two of {', '.join(PRECISIONS)} separated by a comma, got {text!r}")
    return parts[0], parts[1]


def run_compare(cfg: Config, args: argparse.Namespace, settings: BenchSettings) -> Dict[str, Any]:
    names = _precisions(args.compare)
    reports = [building.build(cfg, precision=p) for p in names]
    loaded = [building.load_built(cfg, r) for r in reports]
    (engine_a, model), (engine_b, _) = loaded
    try:
        result = compare_engines(engine_a, engine_b, model, settings, batch=(args.batch or [None])[0])
    finally:
        for engine, _ in loaded:
            engine.close()
    contexts = [result_context(r.to_json(), e.info, result["batch"]) for r, (e, _) in zip(reports, loaded)]
    return {"compare": result, "precisions": list(names), "context": {"a": contexts[0], "b": contexts[1]}}


def run_single(cfg: Config, args: argparse.Namespace, settings: BenchSettings) -> Dict[str, Any]:

    report = building.build(cfg, precision=args.precision)
    engine, model = building.load_built(cfg, report)
    telemetry = telemetry_from_config(cfg.telemetry)
    reason = "--no-power was given" if args.no_power else telemetry.power_unavailable_reason()
    sampler = Sampler(telemetry, cfg.telemetry.rate_hz, cfg.telemetry.history_s) if reason is None else None
    mode = args.mode or cfg.bench.mode
    batches: List[int] = args.batch or list(cfg.bench.batch_sizes)
    source = pipeline = None
    try:
        if sampler is not None:
            sampler.start()
        start = sampler.sample_now().snapshot if sampler else telemetry.read()
        if mode == "pipeline":
            pipeline = Pipeline(engine, model, make_decoder(cfg.model, model))
            source = open_sources(cfg.sources, loop=True)  # every configured source, in turn
        result = run_benchmark(engine, model, settings, batches, mode, pipeline, source, sampler, reason)
        end = sampler.sample_now().snapshot if sampler else telemetry.read()
    finally:
        if source is not None:
            source.close()
        if sampler is not None:
            sampler.stop()
        engine.close()
    result.context = result_context(
        report.to_json(), engine.info, result.batch, telemetry.describe(), start, end, cfg.telemetry.sysfs_root
    )
    return result.to_json()


def run(args: argparse.Namespace) -> int:
    cfg = load(args)
    settings = _settings(cfg, args)
    result = run_compare(cfg, args, settings) if args.compare else run_single(cfg, args, settings)
    emit(args, result, _human)
    return 0
