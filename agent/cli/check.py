"""edge-agent check: accuracy on the spot-labeled set, and drift against the baseline.

Exit code 3 when the drift status is alert."""

from __future__ import annotations

import argparse
import sys
from typing import Any, List, Mapping

from agent.accuracy import check as accuracy
from agent.accuracy.plots import confusion_png, pyplot
from agent.build import engine as building
from agent.cli.common import add_common, emit, load
from agent.util.errors import EXIT_GATE, EXIT_OK


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("check", help="measure accuracy on the spot-labeled set", description=__doc__)
    add_common(parser)
    parser.add_argument("--labels", help="spot-labeled set (default: accuracy.spot_labels)")
    parser.add_argument(
        "--format",
        choices=["auto", "folders", "csv", "jsonl", "yolo", "coco", "dlib", "voc"],
        help="its format (default: accuracy.format)",
    )
    parser.add_argument(
        "--precision", choices=["fp32", "fp16", "int8", "best"], help="engine precision (default: the configured one)"
    )
    parser.add_argument(
        "--save-baseline", action="store_true", help="store this run and the FP32 reference's as the new baseline"
    )
    parser.add_argument("--plot", metavar="PNG", help="also write the confusion matrix as a PNG (needs matplotlib)")
    parser.set_defaults(handler=run)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def human(report: Mapping[str, Any]) -> str:
    """A short table: per-class metrics, the matrix, and the drift verdict with its rules."""
    lines: List[str] = [
        f"{report['task']}: {report['samples']} samples, {report['skipped']} skipped, accuracy {report['accuracy']:.4f}"
    ]
    width = max(len(n) for n in report["matrix_labels"])
    cell = max([width] + [len(str(v)) for row in report["confusion_matrix"] for v in row])
    lines.append(f"{'class':<{width}}  precision  recall  f1     support  recall 95% CI")
    for name, m in report["per_class"].items():
        lo, hi = m["recall_ci95"]
        ap = (
            f"  tp {m['tp']} fp {m['fp']} fn {m['fn']}  AP50 {_fmt(m['ap50'])}  AP50:95 {_fmt(m['ap50_95'])}"
            if "ap50" in m
            else ""
        )
        lines.append(
            f"{name:<{width}}  {_fmt(m['precision']):>9}  {_fmt(m['recall']):>6}  {_fmt(m['f1'])}  {m['support']:>7}  "
            f"[{_fmt(lo)}, {_fmt(hi)}]{ap}"
        )
    if "ap50" in report["macro"]:
        lines.append(
            f"mean over classes (COCO-style, 101-point): AP50 {_fmt(report['macro']['ap50'])}  "
            f"AP50:95 {_fmt(report['macro']['ap50_95'])}  at match_iou {report['match_iou']}"
        )
    lines.append("confusion matrix (rows truth, columns prediction):")
    lines.append(" " * width + "  " + "  ".join(f"{n:>{cell}}" for n in report["matrix_labels"]))
    for name, row in zip(report["matrix_labels"], report["confusion_matrix"]):
        lines.append(f"{name:<{width}}  " + "  ".join(f"{v:>{cell}}" for v in row))
    drift = report.get("drift")
    if drift:
        lines.append(f"drift against baseline v{drift['baseline']['version']}: {drift['status'].upper()}")
        lines.extend(f"  {rule}" for rule in drift["rules_fired"])
    if "baseline_error" in report:
        lines.append(f"baseline: {report['baseline_error']}")
    if "baseline_saved" in report:
        lines.append(f"baseline saved: v{report['baseline_saved']['version']} {report['baseline_saved']['path']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    cfg = load(args)
    if args.plot:
        pyplot()  # a missing matplotlib is said before the check runs, not after
    engine = building.open_engine(cfg, args.precision)
    report = accuracy.run_check(cfg, engine, args.labels, args.format, save_baseline=args.save_baseline)
    for error in report.errors or []:
        sys.stderr.write(f"warning: {error}\n")
    if args.plot:
        report.plot = confusion_png(
            report.confusion_matrix, report.matrix_labels, args.plot, f"{report.task} on {report.samples} samples"
        )
    emit(args, report.to_json(), human)
    return EXIT_GATE if (report.drift or {}).get("status") == "alert" else EXIT_OK
