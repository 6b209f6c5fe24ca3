"""edge-agent telemetry: power, thermal, clocks and load of this device.

--once prints one snapshot; without it, one snapshot per sampling period (telemetry.rate_hz)
until interrupted or --count is reached. --parse-tegrastats turns tegrastats lines from stdin
into the same fields, one JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Dict, Mapping

from agent.cli.common import add_common, emit, load
from agent.telemetry.monitor import Telemetry, telemetry_from_config
from agent.telemetry.sampler import Sampler
from agent.telemetry.tegrastats import TegrastatsParseError, parse_line
from agent.util.errors import EXIT_INPUT, InputError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("telemetry", help="read power, temperatures, clocks and load", description=__doc__)
    add_common(parser)
    parser.add_argument("--once", action="store_true", help="one sample, then exit")
    parser.add_argument("--count", type=int, metavar="N", help="stop after N samples (default: run until interrupted)")
    parser.add_argument(
        "--sysfs-root", metavar="DIR", help="read a sysfs tree rooted at DIR instead of telemetry.sysfs_root"
    )
    parser.add_argument("--parse-tegrastats", action="store_true", help="parse tegrastats lines from stdin")
    parser.set_defaults(handler=run)


def snapshot_fields(telemetry: Telemetry, snapshot: Mapping[str, Any]) -> Dict[str, Any]:
    """A snapshot as printed: monotonic time renamed, discovery facts added."""
    out = {k: v for k, v in snapshot.items() if k != "t"}
    out["t_monotonic"] = snapshot["t"]
    out["power_mode"] = telemetry.describe()["power_mode"]
    out["power_unavailable_reason"] = telemetry.power_unavailable_reason()
    return out


def _human(s: Mapping[str, Any]) -> str:
    lines = []
    if s.get("rails"):
        lines += [f"{name:<18} {mw if mw is not None else '-':>9} mW" for name, mw in s["rails"].items()]
        lines.append(f"{'total':<18} {s['total_mw'] if s['total_mw'] is not None else '-':>9} mW  ({s['total_rail']})")
        if s.get("total_note"):
            lines.append(f"  note: {s['total_note']}")
    elif s.get("power_unavailable_reason"):
        lines.append(f"power: unavailable: {s['power_unavailable_reason']}")
    temps = ", ".join(f"{z} {'-' if c is None else c}" for z, c in (s.get("temperatures_c") or {}).items())
    lines.append(f"temperatures C: {temps or 'none found'}")
    lines.append(f"GPU load %: {s.get('gpu_load_pct') if s.get('gpu_load_pct') is not None else '-'}")
    if s.get("power_mode"):
        lines.append(f"power mode: {s['power_mode']}")
    return "\n".join(lines)


def parse_stream(stream: Any, out: Any) -> int:
    """One JSON object per parsed line; lines that are not tegrastats are named on stderr."""
    bad = 0
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            parsed = parse_line(line)
        except TegrastatsParseError as exc:
            bad += 1
            sys.stderr.write(f"error: stdin line {number}: {exc}\n")
            continue
        out.write(json.dumps(parsed, sort_keys=True) + "\n")
        out.flush()
    return EXIT_INPUT if bad else 0


def run(args: argparse.Namespace) -> int:
    if args.parse_tegrastats:
        return parse_stream(sys.stdin, sys.stdout)
    overrides = list(args.overrides) + ([f"telemetry.sysfs_root={args.sysfs_root}"] if args.sysfs_root else [])
    args.overrides = overrides
    cfg = load(args)
    if args.count is not None and args.count < 1:
        raise InputError(f"--count: expected a positive number, got {args.count}")

    telemetry = telemetry_from_config(cfg.telemetry)
    if args.once:
        telemetry.start()
        try:
            emit(args, snapshot_fields(telemetry, telemetry.read_first()), _human)
        finally:
            telemetry.stop()
        return 0
    return _stream(args, telemetry, cfg.telemetry.rate_hz)


def _stream(args: argparse.Namespace, telemetry: Telemetry, rate_hz: float) -> int:
    sampler = Sampler(telemetry, rate_hz).start()
    printed_until = -1.0
    count = 0
    try:
        while args.count is None or count < args.count:
            latest = sampler.latest()
            if latest is None or latest.t <= printed_until:
                time.sleep(min(0.05, 0.5 / rate_hz))
                continue
            printed_until = latest.t
            fields = snapshot_fields(telemetry, latest.snapshot)
            if args.json:
                sys.stdout.write(json.dumps(fields, sort_keys=True, default=str) + "\n")
                sys.stdout.flush()
            else:
                emit(args, fields, _human)
            count += 1
    finally:
        sampler.stop()
    return 0
