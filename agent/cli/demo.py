"""edge-agent demo: the whole job on an embedded default (real model, real labeled images)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from .. import demo


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="run the product on a built-in sample (no camera, GPU or broker)", description=__doc__)
    parser.add_argument("--workdir", metavar="DIR", help="where the sample stream, config and state go (default: a new temp dir)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from .main import main

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="edge-agent-demo-")).resolve()
    config = demo.prepare(workdir)
    say = sys.stderr.write
    say(f"demo: sample stream, spot labels and config written to {workdir}\n")
    say("demo: step 1/2: build the FP32 engine (ONNX Runtime, MTCNN ONet)\n")
    code = main(["build", "-c", str(config)])
    if code:
        return code
    say("demo: step 2/2: run inference on the sample stream (200 LFW crops: 100 faces, then 100 non-faces)\n")
    return main(["run", "-c", str(config), "--once"])
