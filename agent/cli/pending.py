"""Subcommands whose implementation has not landed yet say so plainly."""

from __future__ import annotations

import argparse

from ..errors import NotAvailableYet


def not_available(what: str) -> None:
    raise NotAvailableYet(f"{what} is not available in this version of edge-agent yet")


def handler(what: str):  # type: ignore[no-untyped-def]
    def run(args: argparse.Namespace) -> int:
        not_available(what)
        return 1

    return run
