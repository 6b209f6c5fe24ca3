"""Write one benchmark's section of docs/benchmarks.md, leaving the other sections as they are."""

from __future__ import annotations

import argparse
import json
import platform
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\n"
    "Each section is written by the script it names, from a run on the machine it names. Numbers\n"
    "are only those measured; targets are compared as ratios measured side by side in one run.\n"
)


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}"


def write_section(name: str, markdown: str) -> None:
    """Replace (or append) the section between this benchmark's markers."""
    from agent.util.fileio import atomic_write_text

    text = DOC.read_text(encoding="utf-8") if DOC.exists() else HEADER
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    block = f"<!-- begin {name} -->\n{markdown.rstrip()}\n\n_Run {stamp} on {machine()}._\n<!-- end {name} -->"
    pattern = re.compile(rf"<!-- begin {re.escape(name)} -->.*?<!-- end {re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    atomic_write_text(DOC, text)


def output_options(parser: argparse.ArgumentParser, note: bool = False) -> None:
    """The options every benchmark script shares: --no-write, and --note for run conditions."""
    if note:
        parser.add_argument("--note", default="", help="run conditions to record (machine load, who else was running)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md as it is")


def publish(name: str, markdown: str, no_write: bool) -> None:
    """Print a benchmark's section and, unless ``no_write``, put it into docs/benchmarks.md."""
    print(markdown, flush=True)
    if not no_write:
        write_section(name, markdown)


def main_in_tempdir(
    argv: Optional[List[str]],
    description: str,
    name: str,
    measure: Callable[[Path, argparse.Namespace], Dict[str, Any]],
    markdown: Callable[[Dict[str, Any]], str],
    rounds: Optional[int] = None,
) -> int:
    """A benchmark's main: options (``--rounds`` when ``rounds`` is its default), ``measure`` in a
    temporary folder, the JSON result printed, its section published as ``name``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    if rounds is not None:
        parser.add_argument("--rounds", type=int, default=rounds, help="interleaved rounds")
    output_options(parser)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        result = measure(Path(tmp), args)
    print(json.dumps(result, indent=2, default=str))
    publish(name, markdown(result), args.no_write)
    return 0
