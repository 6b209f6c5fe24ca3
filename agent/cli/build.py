"""edge-agent build: build (or find in the cache) the engine for the configured model."""

from __future__ import annotations

import argparse
from typing import Any, List, Mapping

from agent.build import engine as building
from agent.cli.common import add_common, emit, key_values, load
from agent.util.errors import GateFailed


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("build", help="build the inference engine (cached)", description=__doc__)
    add_common(parser)
    parser.add_argument(
        "--precision", choices=["fp32", "fp16", "int8", "best"], help="override the configured precision"
    )
    parser.add_argument("--backend", choices=["auto", "tensorrt", "onnxruntime"], help="override backend.name")
    parser.add_argument("--force", action="store_true", help="rebuild even when the cache has a valid engine")
    parser.set_defaults(handler=run)


def _human(report: Mapping[str, Any]) -> str:
    if report.get("engine_path"):
        state = "cache hit" if report["cache_hit"] else f"built in {report['build_time_s']} s"
        if report.get("rebuild_reason"):
            state += f" (rebuilt: {report['rebuild_reason']})"
        lines = [f"engine: {report['engine_path']}", f"status: {state}"]
    else:
        lines = [f"engine: none promoted (search took {report.get('build_time_s')} s)"]
    keys = [
        "backend",
        "backend_version",
        "precision",
        "built_precision",
        "model_sha256",
        "calibration_hash",
        "cache_key",
    ]
    lines.append(key_values(report, keys))
    if report.get("decision"):
        lines.append(f"decision: {report['decision']}")
    lines += _gate_lines(report.get("gate"))
    if report.get("excluded_nodes"):
        lines.append(f"kept in float: {', '.join(report['excluded_nodes'])}")
    lines += [f"note: {n}" for n in report.get("notes", [])]
    if report.get("report_path"):
        lines.append(f"report: {report['report_path']}")
    return "\n".join(lines)


def _gate_lines(gate: Any) -> List[str]:
    if not gate:
        return []
    lines = [f"gate: {'passed' if gate['passed'] else 'FAILED'}"]
    for attempt in gate.get("attempts", []):
        verdict = "passed" if attempt["passed"] else "; ".join(attempt["reasons"])
        what = attempt.get("method") or attempt.get("precision", "?")
        lines.append(
            f"  attempt {attempt['attempt']}: {what}, {len(attempt['excluded_nodes'])} node(s) in float: {verdict}"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    if args.backend:
        args.overrides.append(f"backend.name={args.backend}")
    cfg = load(args)
    report = building.build(cfg, precision=args.precision, force=args.force)
    emit(args, report.to_json(), _human)
    if report.promoted is False:
        raise GateFailed(f"precision {report.precision}: {report.decision} (report: {report.report_path})")
    return 0
