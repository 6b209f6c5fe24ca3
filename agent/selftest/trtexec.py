"""trtexec on an engine file the selftest built: find it, run it with a time limit, read its summary.

trtexec ends with a "=== Performance summary ===" block whose timing lines read
``<Metric>: min = A ms, max = B ms, mean = C ms, median = D ms, percentile(90%) = E ms, ...``
(NVIDIA/TensorRT, samples/common/sampleReporting.cpp, the printing of the performance summary;
the same lines appear in published trtexec logs, e.g. the one in tests/fixtures/trtexec/). The
parser reads every such line; a metric it does not know is kept under its own name.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any, Dict, List, Mapping, Optional, Sequence

# Where JetPack puts trtexec (not on PATH there): beside the TensorRT samples, whose trtexec sources are in
# /usr/src/tensorrt/samples/trtexec. NVIDIA's Orin DLA sample calls it by this path and rebuilds it there on
# JetPack < 6.0 (NVIDIA-AI-IOT/cuDLA-samples, data/model/build_dla_standalone_loadable.sh at 45f5590 and
# README.md at 01e01a1). No JetPack with another path was found; PATH is looked at first all the same.
JETPACK_TRTEXEC = "/usr/src/tensorrt/bin/trtexec"
TIMEOUT_S = 300.0
_NUMBER = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_TIMING = re.compile(
    rf"(?P<metric>[A-Za-z][A-Za-z0-9 ]*?): min = (?P<min>{_NUMBER}) ms, max = (?P<max>{_NUMBER}) ms, "
    rf"mean = (?P<mean>{_NUMBER}) ms, median = (?P<median>{_NUMBER}) ms(?P<rest>.*)"
)
_PERCENTILE = re.compile(rf"percentile\((?P<p>{_NUMBER})%\) = (?P<value>{_NUMBER}) ms")
_THROUGHPUT = re.compile(rf"Throughput: (?P<qps>{_NUMBER}) qps")


def find_trtexec(explicit: Optional[str] = None) -> Optional[str]:
    """``explicit`` if given, else trtexec on PATH, else JetPack's copy; None when there is none."""
    if explicit:
        return explicit
    found = shutil.which("trtexec")
    if found:
        return found
    return JETPACK_TRTEXEC if os.access(JETPACK_TRTEXEC, os.X_OK) else None


def parse_summary(text: str) -> Dict[str, Any]:
    """Timing metrics (ms) and throughput (qps) from trtexec's output; empty when it has none."""
    summary: Dict[str, Any] = {}
    for line in text.splitlines():
        throughput = _THROUGHPUT.search(line)
        if throughput:
            summary["throughput_qps"] = float(throughput.group("qps"))
        timing = _TIMING.search(line)
        if not timing:
            continue
        key = re.sub(r"[^a-z0-9]+", "_", timing.group("metric").strip().lower()).strip("_") + "_ms"
        values = {k: float(timing.group(k)) for k in ("min", "max", "mean", "median")}
        for match in _PERCENTILE.finditer(timing.group("rest")):
            values[f"p{float(match.group('p')):g}"] = float(match.group("value"))
        summary[key] = values
    return summary


def shapes_option(shapes: Mapping[str, Sequence[int]]) -> str:
    """trtexec's ``--shapes=name:AxBxC,...`` (the shapes to run an engine with dynamic dimensions at)."""
    return "--shapes=" + ",".join(f"{name}:{'x'.join(str(d) for d in dims)}" for name, dims in shapes.items())


def run_trtexec(
    binary: str, engine_path: str, shapes: Mapping[str, Sequence[int]], timeout_s: float = TIMEOUT_S
) -> Dict[str, Any]:
    """``trtexec --loadEngine=ENGINE --shapes=... --useSpinWait`` (spin-waiting, as our benchmark
    synchronizes): its command, exit code, summary, and the error if it failed."""
    command: List[str] = [binary, f"--loadEngine={engine_path}", shapes_option(shapes), "--useSpinWait"]
    result: Dict[str, Any] = {"command": command, "returncode": None, "summary": {}, "error": None}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        return result
    result["returncode"] = done.returncode
    result["summary"] = parse_summary(done.stdout + "\n" + done.stderr)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        result["error"] = f"exit code {done.returncode}: " + " | ".join(tail)
    elif not result["summary"]:
        result["error"] = "no performance summary in trtexec's output"
    return result
