"""edge-agent fleet collect: every device's messages from the broker into the fleet store."""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading
from typing import Any

from agent.cli.common import add_common
from agent.cli.fleet import _settings
from agent.fleet.collector import Collector
from agent.fleet.store import open_store


def register(actions: Any) -> None:
    """Add the `collect` action to `edge-agent fleet`."""
    collect = actions.add_parser(
        "collect",
        help="keep every device's messages in the fleet store",
        description=(
            "Subscribe to every device topic through an MQTT 5 shared subscription (collectors in one group split "
            "the load) with a persistent session, and store each message once. SIGTERM or Ctrl-C stops it cleanly."
        ),
    )
    add_common(collect)
    collect.add_argument("--store", metavar="URL", help="store path or URL (default: fleet.store)")
    collect.add_argument("--group", help="shared-subscription group (default: fleet.group)")
    collect.add_argument(
        "--client-id", metavar="ID", help="MQTT client id, the persistent session (default: fleet.client_id)"
    )
    collect.add_argument(
        "--broker", metavar="URL", help="mqtt://host:port or mqtts://host:port (default: mqtt.host and mqtt.port)"
    )
    collect.add_argument("--prefix", help="topic prefix (default: mqtt.prefix)")
    collect.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until stopped)")
    collect.set_defaults(handler=run_collect)


def run_collect(args: argparse.Namespace) -> int:
    cfg, settings = _settings(args)
    fleet = dataclasses.replace(cfg.fleet, group=args.group) if args.group else cfg.fleet
    store = open_store(args.store or fleet.store)
    store.migrate()
    collector = Collector(settings, fleet, store, client_id=args.client_id)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if args.duration is not None:
        threading.Timer(args.duration, stop.set).start()
    sys.stdout.write(f"collecting into {store.dialect} store as {collector.client_id}\n")
    sys.stdout.flush()

    def ready(topic: str) -> None:
        sys.stdout.write(f"subscribed to {topic}\n")
        sys.stdout.flush()

    try:
        collector.run(stop, ready)
    finally:
        store.close()
    sys.stdout.write(json.dumps(collector.stats) + "\n")
    return 0
