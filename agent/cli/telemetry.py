"""edge-agent telemetry: power, thermal, clocks and load of this device."""

from __future__ import annotations

from typing import Any

from . import pending
from .common import add_common


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("telemetry", help="read power, temperatures, clocks and load", description=__doc__)
    add_common(parser)
    parser.add_argument("--once", action="store_true", help="one sample, then exit")
    parser.add_argument("--sysfs-root", metavar="DIR", help="read a sysfs tree rooted at DIR instead of /")
    parser.add_argument("--parse-tegrastats", action="store_true", help="parse tegrastats lines from stdin")
    parser.set_defaults(handler=pending.handler("edge-agent telemetry"))
