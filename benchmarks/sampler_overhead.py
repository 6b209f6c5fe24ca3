"""Sampler overhead: CPU time the telemetry thread costs at 10 Hz, as a share of one core.

Method: in one process, alternate idle phases with the sampler running and idle phases without
it (A B A B ...), each ``PHASE_S`` long, and compare the process's CPU time (user + system, from
time.process_time, all threads) per second of wall time. The sampler reads a copy of a Jetson sysfs tree from
tests/fixtures/sysfs (the same files and file count as on the device; no tegrastats, NVML or
psutil). Interleaving cancels whatever the rest of the machine is doing.

Run: .venv/bin/python -m benchmarks.sampler_overhead [--phase-s 10] [--rounds 3] [--no-write]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Dict, List, Optional

from agent.telemetry.monitor import Telemetry
from agent.telemetry.sampler import Sampler
from benchmarks.report import output_options, publish

TREES = ("orin_agx_jp5", "thor_jp7", "nano_l4t32")
RATE_HZ = 10.0
SYSFS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "sysfs"


def cpu_seconds() -> float:
    return time.process_time()  # CLOCK_PROCESS_CPUTIME_ID: every thread, user + system, ns resolution


def phase(seconds: float, telemetry: Optional[Telemetry] = None) -> Dict[str, float]:
    sampler = Sampler(telemetry, RATE_HZ) if telemetry is not None else None
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    if sampler is not None:
        sampler.start()
    time.sleep(seconds)
    if sampler is not None:
        sampler.stop()
    wall = time.monotonic() - wall0
    return {"cpu_per_s": (cpu_seconds() - cpu0) / wall, "samples": len(sampler.samples()) if sampler else 0}


def measure(tree: str, phase_s: float, rounds: int) -> Dict[str, float]:
    telemetry = Telemetry(str(SYSFS / tree), tegrastats="off", nvml="off", rapl="off")
    with_sampler: List[float] = []
    without: List[float] = []
    samples = 0
    for index in range(rounds):
        order = [True, False] if index % 2 == 0 else [False, True]
        for sampling in order:
            result = phase(phase_s, telemetry if sampling else None)
            (with_sampler if sampling else without).append(result["cpu_per_s"])
            samples += int(result["samples"])
    overhead = sum(with_sampler) / len(with_sampler) - sum(without) / len(without)
    return {
        "ms_per_sample": overhead / RATE_HZ * 1000.0,
        "samples": samples,
        "with_pct": 100 * sum(with_sampler) / len(with_sampler),
        "without_pct": 100 * sum(without) / len(without),
        "overhead_pct": 100 * overhead,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase-s", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    output_options(parser, note=True)
    args = parser.parse_args()
    rows = [
        "| sysfs tree | CPU ms per sample | samples | CPU with sampler | CPU without | overhead (% of one core) "
        "| target |",
        "|---|---|---|---|---|---|---|",
    ]
    for tree in TREES:
        r = measure(tree, args.phase_s, args.rounds)
        verdict = "pass" if r["overhead_pct"] < 1.0 else "FAIL"
        rows.append(
            f"| {tree} | {r['ms_per_sample']:.3f} | {r['samples']} | {r['with_pct']:.3f}% | {r['without_pct']:.3f}% | "
            f"**{r['overhead_pct']:.3f}%** | < 1% ({verdict}) |"
        )
        print(rows[-1], flush=True)
    text = (
        "## Telemetry sampler overhead at 10 Hz\n\n"
        f"Method: one process alternates {args.rounds} x 2 idle phases of {args.phase_s:.0f} s, "
        f"with the sampler running at {RATE_HZ:.0f} Hz and without it (A B, B A, ...), and compares its CPU time "
        "(time.process_time: all threads, user + system) per wall "
        "second. The sampler reads a copy of a Jetson sysfs tree (tests/fixtures/sysfs) with the device's file layout: "
        "rails, thermal zones, devfreq GPU load and clocks, cpufreq of every core. Whatever else runs on the machine "
        f"hits both phases alike thanks to the interleaving. {args.note}\n\n" + "\n".join(rows) + "\n"
    )
    publish("telemetry-overhead", text, args.no_write)


if __name__ == "__main__":
    main()
