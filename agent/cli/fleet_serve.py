"""edge-agent fleet serve: the web dashboard and Prometheus /metrics on a fleet store."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any, Optional

from agent.cli.common import add_common, load
from agent.fleet.dashboard import Commander, Dashboard, DashboardServer, parse_listen
from agent.fleet.store import open_store
from agent.mqtt.keys import load_signer
from agent.mqtt.link import settings_from_config
from agent.util.errors import InputError


def register(actions: Any) -> None:
    """Add the `serve` action to `edge-agent fleet`."""
    serve = actions.add_parser(
        "serve",
        help="serve the fleet dashboard and Prometheus /metrics on a store",
        description=(
            "Serve the fleet page, each device's page (charts, drift, builds, confusion matrix) and /metrics "
            "on the store the collector fills. Read-only unless a command key is configured."
        ),
    )
    add_common(serve)
    serve.add_argument("--store", metavar="URL", help="store path or URL (default: fleet.store)")
    serve.add_argument("--listen", metavar="HOST:PORT", help="address to listen on (default: fleet.dashboard.listen)")
    serve.add_argument(
        "--command-key",
        metavar="FILE",
        help="signing key that enables the page's command form (default: fleet.dashboard.command_key)",
    )
    serve.add_argument("--verbose", action="store_true", help="log every request on stderr")
    serve.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    cfg = load(args)
    board = cfg.fleet.dashboard
    try:
        host, port = parse_listen(args.listen or board.listen)
    except ValueError as exc:
        raise InputError(f"--listen: {exc}") from None
    key_path: Optional[str] = args.command_key or board.command_key
    commander = None
    if key_path:
        commander = Commander(settings_from_config(cfg.mqtt), load_signer(key_path), board.command_wait_s)
    store = open_store(args.store or cfg.fleet.store)
    store.migrate()
    try:
        server = DashboardServer((host, port), Dashboard(store, commander, board.points), verbose=args.verbose)
    except OSError as exc:
        raise InputError(f"--listen {host}:{port}: {exc.strerror}") from None
    bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
    mode = "signed commands on" if commander else "read-only"
    sys.stdout.write(f"dashboard on http://{bound_host}:{bound_port}/ ({mode}); /metrics for Prometheus\n")
    sys.stdout.flush()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops it as Ctrl-C does: cleanly
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        store.close()
    return 0
