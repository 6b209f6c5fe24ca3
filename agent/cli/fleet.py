"""edge-agent monitor / send: the fleet operator's side of MQTT."""

from __future__ import annotations

from typing import Any

from . import pending
from .common import add_common


def register(subparsers: Any) -> None:
    monitor = subparsers.add_parser("monitor", help="live table of every device on the broker", description="Watch every device's reports.")
    add_common(monitor)
    monitor.add_argument("--broker", metavar="URL", help="mqtt://host:port (default: mqtt.host and mqtt.port)")
    monitor.add_argument("--prefix", help="topic prefix (default: mqtt.prefix)")
    monitor.set_defaults(handler=pending.handler("edge-agent monitor"))
    send = subparsers.add_parser("send", help="send a signed command to a device", description="Send a signed command and wait for its answer.")
    add_common(send)
    send.add_argument("device", help="device id")
    send.add_argument("name", metavar="COMMAND", help="command name, e.g. rebuild")
    send.add_argument("arguments", nargs="*", metavar="KEY=VALUE", help="command arguments")
    send.add_argument("--wait", type=float, default=60.0, metavar="S", help="seconds to wait for the result")
    send.add_argument("--broker", metavar="URL", help="mqtt://host:port (default: mqtt.host and mqtt.port)")
    send.set_defaults(handler=pending.handler("edge-agent send"))
