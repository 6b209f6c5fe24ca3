"""The NVML telemetry against nvidia-smi on a real GPU, idle and under a matrix-multiply load.

Run on the device machine from the repository root (run.sh does it); writes JSON lines to stdout:
one {"phase", "agent", "smi"} pair per comparison (nvidia-smi queried right after the agent's
snapshot), then one {"energy"} record comparing NVML's energy counter with the trapezoid integral
of power sampled at 10 Hz over the same interval.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import threading
import time

from agent.telemetry.energy import energy_over
from agent.telemetry.monitor import Telemetry
from agent.telemetry.sampler import Sampler

FIELDS = (
    "utilization.gpu,memory.used,memory.total,clocks.sm,clocks.mem,clocks.max.sm,clocks.max.mem,"
    "temperature.gpu,power.draw,power.limit,clocks_throttle_reasons.active"
)


def smi() -> list:
    out = subprocess.run(
        ["nvidia-smi", f"--query-gpu={FIELDS}", "--format=csv"], capture_output=True, text=True, check=True
    ).stdout
    return list(csv.DictReader(io.StringIO(out), skipinitialspace=True))


def compare(telemetry: Telemetry, phase: str) -> None:
    snapshot = telemetry.read()
    print(json.dumps({"phase": phase, "agent": {k: v for k, v in snapshot.items() if k != "system"}, "smi": smi()}))
    sys.stdout.flush()


def load(stop: threading.Event) -> None:
    import torch

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    while not stop.is_set():
        for _ in range(20):
            a @ b
        torch.cuda.synchronize()


def main() -> None:
    telemetry = Telemetry("/", tegrastats="off", nvml="on", rapl="off")
    print(json.dumps({"describe": telemetry.describe(), "driver": telemetry.nvml.driver if telemetry.nvml else None}))
    for i in range(3):
        compare(telemetry, f"idle-{i}")
        time.sleep(1.0)
    stop = threading.Event()
    worker = threading.Thread(target=load, args=(stop,), daemon=True)
    worker.start()
    time.sleep(8.0)  # clocks and power settle
    for i in range(3):
        compare(telemetry, f"load-{i}")
        time.sleep(1.0)
    sampler = Sampler(Telemetry("/", tegrastats="off", nvml="on", rapl="off"), rate_hz=10.0).start()
    time.sleep(0.5)
    t0 = sampler.sample_now()
    time.sleep(10.0)
    t1 = sampler.sample_now()
    time.sleep(0.3)
    counter = t1.snapshot["energy_counters_mj"]["GPU0"] - t0.snapshot["energy_counters_mj"]["GPU0"]
    sampled, why = energy_over(sampler.power_points(t0.t, t1.t), t0.t, t1.t, 1, t1.total_rail)
    throttling = [
        (s.snapshot["gpus"][0]["clocks_event_reasons"] or {}).get("mask") for s in sampler.samples(t0.t, t1.t)
    ]
    sampler.stop()
    stop.set()
    worker.join(timeout=10)
    print(
        json.dumps(
            {
                "energy": {
                    "window_s": t1.t - t0.t,
                    "counter_mj": counter,
                    "sampled": sampled,
                    "why": why,
                    "masks_seen": sorted(set(m for m in throttling if m)),
                }
            }
        )
    )
    time.sleep(3.0)
    compare(telemetry, "after-load")


if __name__ == "__main__":
    main()
