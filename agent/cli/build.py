"""edge-agent build: build (or find in the cache) the engine for the configured model."""

from __future__ import annotations

import argparse
from typing import Any, Mapping

from .. import build as building
from .common import add_common, emit, key_values, load


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("build", help="build the inference engine (cached)", description=__doc__)
    add_common(parser)
    parser.add_argument("--precision", choices=["fp32", "fp16", "int8", "best"], help="override the configured precision")
    parser.add_argument("--backend", choices=["auto", "tensorrt", "onnxruntime"], help="override backend.name")
    parser.add_argument("--force", action="store_true", help="rebuild even when the cache has a valid engine")
    parser.set_defaults(handler=run)


def _human(report: Mapping[str, Any]) -> str:
    state = "cache hit" if report["cache_hit"] else f"built in {report['build_time_s']} s"
    if report.get("rebuild_reason"):
        state += f" (rebuilt: {report['rebuild_reason']})"
    lines = [f"engine: {report['engine_path']}", f"status: {state}"]
    lines.append(key_values(report, ["backend", "backend_version", "precision", "built_precision", "model_sha256", "cache_key"]))
    lines += [f"note: {n}" for n in report.get("notes", [])]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.backend:
        args.overrides.append(f"backend.name={args.backend}")
    cfg = load(args)
    report = building.build(cfg, precision=args.precision, force=args.force)
    emit(args, report, _human)
    return 0
