"""edge-agent run: the daemon (capture, inference, schedules, commands, reports; systemd-aware).

--json prints each frame's result (with its source's id) as one JSON line on stdout.

Runs until SIGTERM / SIGINT (exit 0), the end of a file source that does not loop, or
--max-frames. SIGHUP reloads the configuration.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from typing import Any, Mapping

from agent.cli.common import add_common, config_path, load_node
from agent.config.sections import Config
from agent.daemon.supervisor import Daemon, check_sources_at_start


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run", help="run the daemon: inference on the configured source, reports, commands", description=__doc__
    )
    add_common(parser)
    parser.add_argument("--max-frames", type=int, metavar="N", help="stop after N inferences (a bounded run)")
    parser.add_argument("--once", action="store_true", help="one pass over a file or folder source, no looping")
    parser.set_defaults(handler=run)


def print_result(result: Mapping[str, Any]) -> None:
    """One inference result as a JSON line on stdout (--json)."""
    sys.stdout.write(json.dumps(result, default=str) + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides) + (["source.loop=false"] if args.once else [])
    args.overrides = overrides
    cfg = load_node(args)
    config = Config.from_node(cfg)
    check_sources_at_start(config.sources)
    daemon = Daemon(
        cfg, config_path(args), overrides, max_frames=args.max_frames, on_result=print_result if args.json else None
    )
    code = daemon.run()
    exit_now_if_threads_linger(code)
    return code


def exit_now_if_threads_linger(code: int) -> None:
    """End the process at once when threads outlive the shutdown (an inference or a build still in
    native code): Python's exit would wait for them or abort while they run (issue 15, case 6)."""
    lingering = [t.name for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive()]
    if not lingering:
        return
    logging.getLogger(__name__).warning("exiting with threads still running: %s", ", ".join(lingering))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
