"""edge-agent bench: latency and throughput of the configured engine."""

from __future__ import annotations

import argparse
from typing import Any, Mapping

import numpy as np

from .. import build as building
from ..bench import bench_engine
from .common import add_common, emit, load


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("bench", help="measure latency and throughput", description=__doc__)
    add_common(parser)
    parser.add_argument("--precision", choices=["fp32", "fp16", "int8", "best"], help="override the configured precision")
    parser.add_argument("--duration", type=float, metavar="S", help="minimum measuring time (default: bench.min_duration_s)")
    parser.add_argument("--iterations", type=int, metavar="N", help="minimum iterations (default: bench.min_iterations)")
    parser.set_defaults(handler=run)


def _human(r: Mapping[str, Any]) -> str:
    lat = r["latency_ms"]
    return (
        f"{r['backend']} {r['precision']} batch {r['batch']}: {r['throughput_ips']} inferences/s over {r['iterations']} "
        f"iterations in {r['duration_s']} s\nlatency ms: min {lat['min']}  p50 {lat['p50']}  p90 {lat['p90']}  "
        f"p99 {lat['p99']}  max {lat['max']}"
    )


def run(args: argparse.Namespace) -> int:
    cfg = load(args)
    report = building.build(cfg, precision=args.precision)
    engine, model = building.load_built(cfg, report)
    rng = np.random.default_rng(0)
    shape = model.spec.tensor_shape()
    feeds = {model.spec.name: rng.standard_normal(shape).astype(model.spec.dtype)}
    result = bench_engine(
        engine,
        feeds,
        model.spec.batch,
        cfg.bench.warmup_s,
        args.duration if args.duration is not None else cfg.bench.min_duration_s,
        args.iterations or cfg.bench.min_iterations,
    )
    result.update(backend=report["backend"], precision=report["built_precision"], model_sha256=report["model_sha256"])
    emit(args, result, _human)
    return 0
