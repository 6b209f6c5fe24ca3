"""What every subcommand shares: -c/--config, --set, --json, logging and output."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any, Callable, Mapping, Optional

from agent.config.load import load_config
from agent.config.sections import Config
from agent.util.schema import Node

DEFAULT_CONFIG = "/etc/edge-agent/config.yaml"


def add_common(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("common options")
    group.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help=(
            f"configuration file (default: $EDGE_AGENT_CONFIG, else {DEFAULT_CONFIG} if present, "
            "else built-in defaults)"
        ),
    )
    group.add_argument(
        "--set",
        metavar="KEY.PATH=VALUE",
        action="append",
        default=[],
        dest="overrides",
        help="override one configuration key, validated like the file (repeatable)",
    )
    group.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    group.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="log level on stderr (default: logging.level)",
    )


def config_path(args: argparse.Namespace) -> Optional[str]:
    if args.config:
        return str(args.config)
    env = os.environ.get("EDGE_AGENT_CONFIG")
    if env:
        return env
    return DEFAULT_CONFIG if os.path.exists(DEFAULT_CONFIG) else None


def load_node(args: argparse.Namespace) -> Node:
    """The validated configuration for this invocation, as loaded (a mapping); sets up logging from it."""
    cfg = load_config(config_path(args), args.overrides)
    setup_logging(args.log_level or cfg.logging.level)
    return cfg


def load(args: argparse.Namespace) -> Config:
    """The validated configuration for this invocation, typed; sets up logging from it."""
    return Config.from_node(load_node(args))


def setup_logging(level: str) -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def emit(args: argparse.Namespace, data: Mapping[str, Any], human: Callable[[Mapping[str, Any]], str]) -> None:
    """JSON on stdout with --json, else the human rendering."""
    text = to_json(data) if args.json else human(data)
    sys.stdout.write(text.rstrip("\n") + "\n")
    sys.stdout.flush()


def key_values(data: Mapping[str, Any], keys: Any) -> str:
    """Human text: one 'key: value' line per key present."""
    width = max(len(k) for k in keys)
    return "\n".join(f"{k:<{width}}  {data[k]}" for k in keys if k in data)
