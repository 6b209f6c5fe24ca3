"""edge-agent run: the daemon (capture, inference, schedules, commands, reports; systemd-aware).

Runs until SIGTERM / SIGINT (exit 0), the end of a file source that does not loop, or
--max-frames. SIGHUP reloads the configuration.
"""

from __future__ import annotations

import argparse
from typing import Any

from agent.cli.common import add_common, config_path, load
from agent.daemon.supervisor import Daemon, check_source_at_start, print_result


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run", help="run the daemon: inference on the configured source, reports, commands", description=__doc__
    )
    add_common(parser)
    parser.add_argument("--max-frames", type=int, metavar="N", help="stop after N inferences (a bounded run)")
    parser.add_argument("--once", action="store_true", help="one pass over a file or folder source, no looping")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides) + (["source.loop=false"] if args.once else [])
    args.overrides = overrides
    cfg = load(args)
    check_source_at_start(cfg)
    daemon = Daemon(
        cfg, config_path(args), overrides, max_frames=args.max_frames, on_result=print_result if args.json else None
    )
    return daemon.run()
