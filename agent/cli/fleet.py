"""edge-agent monitor / send: the fleet operator's side of MQTT."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, List, Tuple

import yaml

from agent.cli.common import add_common, load
from agent.config.load import read_secret
from agent.config.sections import Config
from agent.mqtt import fleet
from agent.mqtt.commands import COMMANDS
from agent.mqtt.link import Settings, parse_broker_url, settings_from_config
from agent.util.errors import EdgeAgentError, InputError


def register(subparsers: Any) -> None:
    monitor = subparsers.add_parser(
        "monitor", help="live table of every device on the broker", description="Watch every device's reports."
    )
    add_common(monitor)
    monitor.add_argument(
        "--broker", metavar="URL", help="mqtt://host:port or mqtts://host:port (default: mqtt.host and mqtt.port)"
    )
    monitor.add_argument("--prefix", help="topic prefix (default: mqtt.prefix)")
    monitor.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: run until Ctrl-C)")
    monitor.set_defaults(handler=run_monitor)
    send = subparsers.add_parser(
        "send",
        help="send a signed command to a device",
        description=(
            "Send a signed command and wait for its answer. "
            "Exit code 0: ok; 1: error, busy or no answer; 3: a check or gate failed."
        ),
        epilog="commands: "
        + ", ".join(COMMANDS)
        + ". Values are read as YAML scalars: frames=100, precision=int8, labels='{a1: face}'.",
    )
    add_common(send)
    send.add_argument("device", help="device id")
    send.add_argument("name", metavar="COMMAND", help="command name, e.g. rebuild")
    send.add_argument("arguments", nargs="*", metavar="KEY=VALUE", help="command arguments")
    send.add_argument("--wait", type=float, default=60.0, metavar="S", help="seconds to wait for the result")
    send.add_argument(
        "--broker", metavar="URL", help="mqtt://host:port or mqtts://host:port (default: mqtt.host and mqtt.port)"
    )
    send.add_argument("--prefix", help="topic prefix (default: mqtt.prefix)")
    send.add_argument("--key-file", metavar="FILE", help="HMAC signing key file (default: commands.key_file)")
    send.set_defaults(handler=run_send)


def _settings(args: argparse.Namespace) -> Tuple[Config, Settings]:
    """The configuration and the connection settings, with --broker and --prefix applied."""
    cfg = load(args)
    settings = settings_from_config(cfg.mqtt)
    if args.broker:
        try:
            host, port, tls = parse_broker_url(args.broker)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        settings = settings._replace(host=host, port=port or (8883 if tls else 1883), tls=tls or settings.tls)
    if args.prefix:
        settings = settings._replace(prefix=args.prefix)
    return cfg, settings


def parse_arguments(items: List[str]) -> Dict[str, Any]:
    """['precision=int8', 'frames=100'] -> {'precision': 'int8', 'frames': 100} (values as YAML scalars)."""
    out: Dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InputError(f"command argument {item!r}: expected KEY=VALUE")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key] = raw
    return out


def run_monitor(args: argparse.Namespace) -> int:
    _, settings = _settings(args)
    try:
        return fleet.monitor(settings, sys.stdout, json_lines=args.json, duration=args.duration)
    except ConnectionError as exc:
        raise EdgeAgentError(str(exc)) from None


def run_send(args: argparse.Namespace) -> int:
    cfg, settings = _settings(args)
    arguments = parse_arguments(args.arguments)
    if args.key_file:
        try:
            with open(args.key_file, "r", encoding="utf-8") as handle:
                key = handle.read().strip()
        except OSError as exc:
            raise InputError(f"--key-file: cannot read {args.key_file}: {exc.strerror}") from None
    else:
        key = read_secret("commands.key_file", cfg.commands.key_file) or ""
    if not key:
        raise InputError("no signing key: pass --key-file or set commands.key_file")
    try:
        return fleet.send(
            settings,
            args.device,
            args.name,
            arguments,
            key.encode("utf-8"),
            sys.stdout,
            wait_s=args.wait,
            json_lines=args.json,
        )
    except ConnectionError as exc:
        raise EdgeAgentError(str(exc)) from None
