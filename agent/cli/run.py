"""edge-agent run: the inference loop on the configured source."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Dict

from .. import build as building
from ..pipeline import Pipeline, make_decoder
from ..sources import open_source
from .common import add_common, load


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("run", help="run inference on the configured source", description=__doc__)
    add_common(parser)
    parser.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    parser.add_argument("--once", action="store_true", help="one pass over a file or folder source, no looping")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    cfg = load(args)
    report = building.build(cfg)
    engine, model = building.load_built(cfg, report)
    pipeline = Pipeline(engine, model, make_decoder(cfg, model))
    counts: Dict[str, int] = {}
    frames = 0
    started = time.monotonic()
    with open_source(cfg.source, loop=False if args.once else None) as source:
        for frame in source:
            result = pipeline.infer_frames([frame])[0]
            frames += 1
            label = result["top"][0]["label"] if result.get("top") else "none"
            counts[label] = counts.get(label, 0) + 1
            line = json.dumps(result) if args.json else f"frame {result['frame']:>5}  {label:<12} {result['top'][0]['score'] if result.get('top') else ''}"
            sys.stdout.write(line + "\n")
            if args.max_frames and frames >= args.max_frames:
                break
    elapsed = time.monotonic() - started
    summary = {"frames": frames, "seconds": round(elapsed, 3), "fps": round(frames / elapsed, 2) if elapsed else None, "counts": counts}
    sys.stderr.write(f"summary: {json.dumps(summary)}\n")
    return 0
