"""edge-agent check: accuracy on the spot-labeled set, and drift against the baseline."""

from __future__ import annotations

from typing import Any

from . import pending
from .common import add_common


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("check", help="measure accuracy on the spot-labeled set", description=__doc__)
    add_common(parser)
    parser.add_argument("--labels", help="spot-labeled set (default: accuracy.spot_labels)")
    parser.set_defaults(handler=pending.handler("edge-agent check"))
