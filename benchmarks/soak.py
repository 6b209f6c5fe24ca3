"""Soak: the daemon for a long time against a local mosquitto; RSS, open fds, outbox, throughput.

Starts a private mosquitto and `edge-agent run` (the demo model on the looping sample stream at
25 fps, telemetry every second, a benchmark and an accuracy check every minute), subscribes to
its telemetry, samples the daemon's RSS and open file descriptors with psutil, and at the end
sends SIGTERM. Not part of CI (30 minutes by default):

    .venv/bin/python -m benchmarks.soak [--minutes 30] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import paho.mqtt.client as paho
import psutil
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from agent.demo import sample as demo
from benchmarks.report import output_options, publish

SAMPLE_S = 5.0


def soak(workdir: Path, minutes: float) -> Dict[str, Any]:
    binary = demo.find_mosquitto()
    if binary is None:
        raise SystemExit("the soak needs mosquitto (apt-get install mosquitto)")
    demo.prepare(workdir)
    broker = demo.Mosquitto(binary, workdir / "broker").start()
    config = demo.live_config(workdir, broker.port)
    data = yaml.safe_load(config.read_text())
    data["schedules"] = {"telemetry_s": 1.0, "benchmark_s": 60.0, "check_s": 60.0}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    telemetry: List[Dict[str, Any]] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="soak-watcher")
    client.on_connect = lambda c, u, f, r, p: c.subscribe(f"edge-agent/{demo.DEMO_DEVICE}/telemetry", qos=0)
    client.on_message = lambda c, u, m: telemetry.append(dict(json.loads(m.payload), received=time.monotonic()))
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    log = open(workdir / "daemon.log", "wb")
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=log
    )
    samples: List[Dict[str, float]] = []
    try:
        process = psutil.Process(agent.pid)
        started = time.monotonic()
        end = started + minutes * 60.0
        while time.monotonic() < end and agent.poll() is None:
            samples.append(sample(process, started))
            time.sleep(SAMPLE_S)
        stop = time.monotonic()
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(30)
        stop_s = time.monotonic() - stop
    finally:
        if agent.poll() is None:
            agent.kill()
        client.loop_stop()
        broker.stop()
        log.close()
    return summarize(samples, telemetry, code, stop_s, minutes)


def sample(process: psutil.Process, started: float) -> Dict[str, float]:
    """One sample of a process's resources, ``t`` seconds after ``started`` (monotonic)."""
    return {
        "t": time.monotonic() - started,
        "rss_mb": process.memory_info().rss / 1e6,
        "fds": process.num_fds(),
        "threads": process.num_threads(),
    }


def resource_trend(samples: List[Dict[str, float]]) -> Dict[str, Any]:
    """RSS at the start and end (first and last quarter, the first minute left out: it loads
    engines and baselines) and its maximum; open fds and threads over the run."""
    warm = [s for s in samples if s["t"] >= 60.0] or samples
    quarter = max(1, len(warm) // 4)
    first, last = warm[:quarter], warm[-quarter:]
    return {
        "rss_mb_start": round(statistics.mean(s["rss_mb"] for s in first), 1),
        "rss_mb_end": round(statistics.mean(s["rss_mb"] for s in last), 1),
        "rss_mb_max": round(max(s["rss_mb"] for s in samples), 1),
        "fds_min": min(s["fds"] for s in warm),
        "fds_max": max(s["fds"] for s in warm),
        "threads_max": max(s["threads"] for s in warm),
    }


def summarize(
    samples: List[Dict[str, float]], telemetry: List[Dict[str, Any]], code: int, stop_s: float, minutes: float
) -> Dict[str, Any]:
    per_window = []
    for i in range(1, len(telemetry)):
        a, b = telemetry[i - 1], telemetry[i]
        dt = b["received"] - a["received"]
        if dt > 0:
            per_window.append((b["pipeline"]["inferences"] - a["pipeline"]["inferences"]) / dt)
    minute_rates = [
        statistics.mean(per_window[i : i + 60]) for i in range(0, len(per_window), 60) if per_window[i : i + 60]
    ]
    outbox = [t.get("outbox", {}).get("messages", 0) for t in telemetry]
    return {
        "minutes": minutes,
        **resource_trend(samples),
        "outbox_max": max(outbox) if outbox else None,
        "outbox_last": outbox[-1] if outbox else None,
        "fps_per_minute": [round(r, 2) for r in minute_rates],
        "telemetry_messages": len(telemetry),
        "exit_code": code,
        "stop_s": round(stop_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    output_options(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        r = soak(Path(tmp), args.minutes)
    print(json.dumps(r, indent=2))
    rates = r["fps_per_minute"]
    text = "\n".join(
        [
            "## Daemon soak (benchmarks/soak.py)",
            "",
            f"Method: `edge-agent run` for {r['minutes']:g} min on the demo model and looping sample stream "
            "(25 fps), a local",
            "mosquitto, telemetry every 1 s, a benchmark and an accuracy check every 60 s. "
            "RSS, open fds and threads sampled",
            f"every {SAMPLE_S:g} s with psutil "
            "(the first minute, which loads engines and baselines, is left out of start/end);",
            "outbox depth and throughput from the daemon's own telemetry over MQTT; SIGTERM at the end."
            + (f" This was a short run ({r['minutes']:g} min), not the 30-minute soak." if r["minutes"] < 30 else ""),
            "",
            "| RSS start / end / max MB | open fds min-max | threads max | outbox max / last "
            "| fps per minute (min-max) | exit code | stop s |",
            "|---|---|---|---|---|---|---|",
            f"| {r['rss_mb_start']} / {r['rss_mb_end']} / {r['rss_mb_max']} | {r['fds_min']}-{r['fds_max']} "
            f"| {r['threads_max']} | "
            f"{r['outbox_max']} / {r['outbox_last']} "
            f"| {min(rates) if rates else '-'}-{max(rates) if rates else '-'} "
            f"| {r['exit_code']} | {r['stop_s']} |",
        ]
    )
    publish("soak", text, args.no_write)


if __name__ == "__main__":
    main()
