"""edge-agent demo: the whole product on a built-in sample (no camera, GPU or model download).

A private MQTT broker (mosquitto when installed, else amqtt), the daemon on a
looping sample stream (real MTCNN ONet face classifier, 200 LFW crops), the fleet monitor's table
of its reports, and a signed `rebuild precision=int8` swapped in while inference goes on; then
SIGTERM and a clean stop.
"""

from __future__ import annotations

import argparse
from typing import Any

from agent.demo.tour import run_demo


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="run the whole product on a built-in sample", description=__doc__)
    parser.add_argument(
        "--workdir", metavar="DIR", help="where the sample stream, config, state and logs go (default: a new temp dir)"
    )
    parser.add_argument(
        "--broker",
        choices=["auto", "mosquitto", "amqtt"],
        default="auto",
        help="auto: mosquitto when installed, else amqtt (pip install amqtt, Python >= 3.10)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return run_demo(args.workdir, args.broker)
