"""edge-agent calibrate: collect calibration frames and compute INT8 ranges."""

from __future__ import annotations

from typing import Any

from . import pending
from .common import add_common


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("calibrate", help="collect calibration frames and calibrate INT8", description=__doc__)
    add_common(parser)
    parser.add_argument("--source", help="image folder, video file, or 'camera' (default: the configured source)")
    parser.add_argument("--frames", type=int, help="number of frames (default: calibration.frames)")
    parser.add_argument("--method", choices=["minmax", "entropy", "percentile"], help="override calibration.method")
    parser.set_defaults(handler=pending.handler("edge-agent calibrate"))
