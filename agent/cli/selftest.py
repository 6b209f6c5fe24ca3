"""edge-agent selftest: prove the accelerated path on this device.

Builds FP32, FP16 and INT8 engines of a shipped model (the demo's MTCNN ONet face classifier and
its 200 labeled LFW crops; with -c, the configured model and spot-labeled set instead), compares
each with ONNX Runtime FP32 (top-1 agreement, max abs diff, per-class recall, confusion matrix),
benchmarks it, times the same engine file with trtexec when there is one, and writes
selftest.json and selftest.txt into --workdir. Exit code 0 when every built precision passed the
accuracy gate's thresholds, 3 when one did not.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any, List

from agent.cli.common import add_common, emit, load, to_json
from agent.demo import sample
from agent.measure.benchmark import BenchSettings
from agent.selftest.run import PRECISIONS, SelftestSettings, run_selftest
from agent.selftest.summary import render
from agent.selftest.trtexec import find_trtexec
from agent.util.errors import EXIT_GATE, EXIT_OK, InputError
from agent.util.fileio import atomic_write_text


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("selftest", help="prove the accelerated engines on this device", description=__doc__)
    add_common(parser)
    parser.add_argument("--workdir", metavar="DIR", help="sample, engines and the reports (default: a new temp dir)")
    parser.add_argument(
        "--backend", default="auto", help="backend.name for the shipped sample (default auto: TensorRT where installed)"
    )
    parser.add_argument("--precisions", default=",".join(PRECISIONS), help="comma-separated (default: %(default)s)")
    parser.add_argument(
        "--trtexec", metavar="PATH", help="trtexec binary (default: on PATH, else JetPack's); 'none' skips it"
    )
    parser.add_argument("--duration", type=float, default=3.0, metavar="S", help="benchmark time per precision")
    parser.set_defaults(handler=run)


def _precisions(text: str) -> List[str]:
    chosen = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in PRECISIONS]
    if unknown or not chosen:
        raise InputError(f"--precisions: expected some of {', '.join(PRECISIONS)}, got {text!r}")
    return chosen


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")


def run(args: argparse.Namespace) -> int:
    precisions = _precisions(args.precisions)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="edge-agent-selftest-")).resolve()
    if not args.config:  # the shipped sample, on the backend asked for
        args.config = str(sample.prepare(workdir))
        args.overrides = [f"backend.name={args.backend}", f"paths.state_dir={workdir / 'state'}", *args.overrides]
    config = load(args)
    trtexec = None if args.trtexec == "none" else find_trtexec(args.trtexec)
    bench = BenchSettings(warmup_s=0.5, min_duration_s=args.duration, max_duration_s=max(10.0, 4 * args.duration))
    settings = SelftestSettings(precisions, bench, trtexec)
    report = run_selftest(config, settings, say=_say)
    summary = render(report)
    atomic_write_text(workdir / "selftest.json", to_json(report) + "\n")
    atomic_write_text(workdir / "selftest.txt", summary + "\n")
    emit(args, report, lambda _: summary + f"\nreports: {workdir / 'selftest.json'}, {workdir / 'selftest.txt'}")
    return EXIT_OK if report["passed"] else EXIT_GATE
