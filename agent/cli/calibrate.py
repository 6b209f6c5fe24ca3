"""edge-agent calibrate: collect calibration frames and compute INT8 ranges.

Frames come from an image folder, a video file, or the configured camera ('camera'); they are
stored under paths.calibration_dir with a manifest and become the current calibration set. The
configured model is then calibrated on them: a QDQ ONNX model, a TensorRT calibration cache and
a calibration report are written next to the set. `edge-agent build --precision int8` gates them.
"""

from __future__ import annotations

import argparse
from typing import Any, Mapping

from agent.cli.common import add_common, emit, key_values, load
from agent.util.errors import InputError
from calibration.workflow import calibrate


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="collect calibration frames and calibrate INT8",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common(parser)
    parser.add_argument("--source", help="image folder, video file, or 'camera' (default: the configured source)")
    parser.add_argument("--frames", type=int, help="number of frames (default: calibration.frames)")
    parser.add_argument("--method", choices=["minmax", "entropy", "percentile"], help="override calibration.method")
    parser.set_defaults(handler=run)


def _human(result: Mapping[str, Any]) -> str:
    keys = [
        "calibration_hash",
        "frames",
        "frames_seen",
        "source",
        "method",
        "calibration_set",
        "manifest",
        "normalized_model",
        "qdq_model",
        "trt_calibration_cache",
        "calibration_report",
    ]
    return key_values(result, keys)


def run(args: argparse.Namespace) -> int:

    if args.frames is not None and args.frames < 1:
        raise InputError(f"--frames: expected a positive number, got {args.frames}")
    cfg = load(args)
    result = calibrate(cfg, args.source, args.frames, args.method)
    emit(args, result, _human)
    return 0
