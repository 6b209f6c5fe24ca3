"""edge-agent fleet collect / serve: the store of every device's reports and the dashboard on it."""

from __future__ import annotations

from typing import Any

from agent.cli import fleet_collect, fleet_serve


def register(subparsers: Any) -> None:
    fleet = subparsers.add_parser(
        "fleet", help="keep every device's reports and serve a dashboard on them", description=__doc__
    )
    actions = fleet.add_subparsers(dest="fleet_command", metavar="ACTION")
    actions.required = True
    fleet_collect.register(actions)
    fleet_serve.register(actions)
