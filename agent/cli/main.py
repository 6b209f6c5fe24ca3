"""Entry point: parse, dispatch to the subcommand, map errors to exit codes.

Exit codes: 0 ok, 1 runtime failure, 2 bad input or configuration, 3 a check or gate failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from agent import __version__
from agent.cli import bench, build, calibrate, check, config_cmd, demo, fleet, fleet_cmd, run, selftest, telemetry
from agent.util.errors import EXIT_INPUT, EXIT_RUNTIME, ConfigError, EdgeAgentError

SUBCOMMANDS = (run, build, calibrate, bench, check, selftest, telemetry, fleet, fleet_cmd, config_cmd, demo)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-agent",
        description="Build, run, measure and watch a vision model on an NVIDIA Jetson (or any Linux box).",
        epilog="exit codes: 0 ok, 1 runtime failure, 2 bad input or configuration, 3 a check or gate failed",
    )
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module in SUBCOMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ConfigError as exc:
        for line in exc.errors:
            sys.stderr.write(f"error: {line}\n")
        return EXIT_INPUT
    except EdgeAgentError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception:  # a bug: show it, and say it is one
        logging.getLogger("edge-agent").exception("unexpected failure (a bug; please report it)")
        return EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
