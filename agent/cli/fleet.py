"""edge-agent monitor / send / keygen: the fleet operator's side of MQTT."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import yaml

from agent.cli.common import add_common, load
from agent.config.sections import Config
from agent.mqtt import fleet
from agent.mqtt.commands import COMMANDS
from agent.mqtt.keys import generate, load_signer
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
    send.add_argument(
        "--key-file",
        metavar="FILE",
        help="signing key: an Ed25519 private key from edge-agent keygen, or an HMAC secret (default: "
        "commands.key_file)",
    )
    send.add_argument(
        "--device-clock",
        action="store_true",
        help="when the device refuses the request as expired, sign it again for the clock it reports",
    )
    send.set_defaults(handler=run_send)
    keygen = subparsers.add_parser(
        "keygen",
        help="make an Ed25519 key pair for signing commands",
        description=(
            "Write an operator's Ed25519 private key (mode 0600) to FILE and its public key line to FILE.pub; "
            "append that line to each device's commands.key_file."
        ),
    )
    keygen.add_argument("key_id", metavar="KEY_ID", help="the key's id, e.g. the operator's name")
    keygen.add_argument("--out", required=True, metavar="FILE", help="private key file to write (not overwritten)")
    keygen.set_defaults(handler=run_keygen)


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
    path = args.key_file or cfg.commands.key_file
    if not path:
        raise InputError("no signing key: pass --key-file or set commands.key_file")
    signer = load_signer(path)
    try:
        return fleet.send(
            settings,
            args.device,
            args.name,
            arguments,
            signer,
            sys.stdout,
            wait_s=args.wait,
            json_lines=args.json,
            device_clock=args.device_clock,
        )
    except ConnectionError as exc:
        raise EdgeAgentError(str(exc)) from None


def run_keygen(args: argparse.Namespace) -> int:
    signer, private_text = generate(args.key_id)
    out = Path(args.out)
    public = out.with_name(out.name + ".pub")
    try:
        fd = os.open(str(out), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InputError(f"--out: {out} exists; keygen never overwrites a key") from None
    except OSError as exc:
        raise InputError(f"--out: cannot create {out}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(private_text)
    public.write_text(signer.public_line() + "\n", encoding="utf-8")
    sys.stdout.write(
        f"private key: {out} (mode 0600; keep it on the operator's machine)\n"
        f"public key:  {public}; append this line to each device's commands.key_file:\n"
        f"{signer.public_line()}\n"
    )
    return 0
