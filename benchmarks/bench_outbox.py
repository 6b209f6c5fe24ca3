"""MQTT outbox replay rate after an outage, and publish latency on loopback, with a real mosquitto.

Replay: the broker is stopped; the device link (agent.mqtt.link.DeviceLink with its SQLite outbox,
synchronous=FULL) stores N benchmark-sized reports; the broker starts again. The clock runs from
the moment the link is connected until the outbox is empty, i.e. every report was acknowledged
(PUBACK) and deleted; a mosquitto_sub subscriber (QoS 1) must then have received all N distinct
seqs, or the run fails. Median of the runs is reported, with the slowest run.

Latency: with the link connected and a paho subscriber in the same process, reports are
published one at a time, paced; latency = time from the publish_report() call (which includes
the durable outbox write) to the subscriber's on_message. Also reported: how long the
publish_report() call itself blocks (the fsync'd insert).

Run: .venv/bin/python -m benchmarks.bench_outbox [--count 5000] [--runs 3] [--latency-n 1000] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Set

from benchmarks.report import output_options, publish

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agent.mqtt.link import DeviceLink, Settings, make_client  # noqa: E402
from agent.mqtt.messages import SequenceFile, encode, envelope  # noqa: E402
from agent.mqtt.outbox import Bounds, Outbox  # noqa: E402
from tests.mqtt.brokers import Broker  # noqa: E402

BODY = {
    "precision": "int8",
    "throughput_fps": 412.7,
    "latency_ms": {"p50": 2.41, "p90": 2.6, "p99": 3.12, "mean": 2.45},
    "power_w": 7.42,
    "energy_mj_per_inference": 17.98,
    "accuracy": {"accuracy": 0.985, "drift_status": "ok", "ts": "2026-01-01T00:00:00Z"},
}
BOUNDS = Bounds(10**6, 10**9, 1e9)


def _link(state: Path, port: int) -> DeviceLink:
    settings = Settings("127.0.0.1", port, reconnect_min_s=0.05, reconnect_max_s=0.2)
    return DeviceLink(settings, "bench", Outbox(state / "outbox.sqlite", BOUNDS), SequenceFile(state / "seq"))


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.001)


def replay_run(workdir: Path, count: int) -> Dict[str, float]:
    broker = Broker(workdir / "broker").start()
    sub = subprocess.Popen(
        [
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            str(broker.port),
            "-t",
            "edge-agent/bench/report/#",
            "-q",
            "1",
            "-c",
            "-i",
            "bench-sub",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    seqs: "queue.Queue[str]" = queue.Queue()
    lines = sub.stdout
    assert lines is not None

    def forward() -> None:
        for line in lines:
            seqs.put(line)

    threading.Thread(target=forward, daemon=True).start()
    time.sleep(0.5)
    broker.stop()
    link = _link(workdir / "state", broker.port)
    link.start()
    for _ in range(count):
        link.publish_report("benchmark", BODY)
    assert link.outbox.count == count
    broker.start()
    _wait(lambda: link.connected, 30, "the link to reconnect")
    started = time.perf_counter()
    _wait(lambda: link.outbox.count == 0, 120, "the outbox to empty")
    elapsed = time.perf_counter() - started
    received: Set[str] = set()
    deadline = time.monotonic() + 30
    while len(received) < count and time.monotonic() < deadline:
        try:
            line = seqs.get(timeout=1)
        except queue.Empty:
            continue
        received.add(line.split('"seq":', 1)[1].split(",", 1)[0])
    link.stop(timeout=2)
    sub.terminate()
    sub.wait(5)
    broker.stop()
    if len(received) != count:
        raise RuntimeError(f"the subscriber got {len(received)} of {count} reports")
    return {"seconds": elapsed, "rate": count / elapsed}


def latency_run(workdir: Path, n: int, interval_s: float) -> Dict[str, List[float]]:
    broker = Broker(workdir / "broker").start()
    arrived: Dict[int, float] = {}
    done = threading.Event()
    subscriber = make_client(Settings("127.0.0.1", broker.port), "bench-latency-sub")

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        seq = int(message.payload.split(b'"seq":', 1)[1].split(b",", 1)[0])
        arrived[seq] = time.perf_counter()
        if len(arrived) >= n:
            done.set()

    subscriber.on_message = on_message
    subscriber.on_connect = lambda c, u, f, r, p: c.subscribe("edge-agent/bench/report/#", qos=1)
    subscriber.connect("127.0.0.1", broker.port)
    subscriber.loop_start()
    link = _link(workdir / "state", broker.port)
    link.start()
    _wait(lambda: link.connected, 30, "the link to connect")
    time.sleep(0.5)
    sent: Dict[int, float] = {}
    blocked: List[float] = []
    for _ in range(n):
        start = time.perf_counter()
        seq = link.publish_report("benchmark", BODY)
        blocked.append((time.perf_counter() - start) * 1000)
        sent[seq] = start
        time.sleep(interval_s)
    if not done.wait(60):
        raise RuntimeError(f"the subscriber got {len(arrived)} of {n} reports")
    link.stop(timeout=2)
    subscriber.loop_stop()
    broker.stop()
    return {"end_to_end": [(arrived[s] - t) * 1000 for s, t in sent.items()], "call": blocked}


def percentile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="reports stored during the outage")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-n", type=int, default=1000)
    parser.add_argument("--interval-ms", type=float, default=5.0, help="pause between latency samples")
    output_options(parser)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    replays = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            replays.append(replay_run(Path(tmp), args.count))
        print(f"replay run {run + 1}: {replays[-1]['rate']:.0f} reports/s ({replays[-1]['seconds']:.2f} s)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        lat = latency_run(Path(tmp), args.latency_n, args.interval_ms / 1000)
    load_after = os.getloadavg()[0]
    rates = [r["rate"] for r in replays]
    e2e, call = lat["end_to_end"], lat["call"]
    payload_bytes = len(encode(envelope("benchmark", "bench", 1, BODY)))
    markdown = f"""## MQTT outbox (benchmarks/bench_outbox.py)

Real mosquitto 2 on loopback; the device link with its SQLite outbox (WAL, synchronous=FULL).
1-minute load average {load_before:.1f} before and {load_after:.1f} after the run (the machine is shared).

**Replay after an outage.** {args.count} benchmark reports ({payload_bytes} bytes of JSON each)
stored while the broker was down; timed from reconnection until every one was acknowledged
(PUBACK) and deleted from the outbox; a QoS 1 mosquitto_sub subscriber received all {args.count} distinct
seqs in every run. {args.runs} runs.

| | reports/s |
|---|---|
| median | {statistics.median(rates):.0f} |
| slowest run | {min(rates):.0f} |
| target | >= 1000 |

**Publish latency on loopback.** {args.latency_n} reports published one at a time, {args.interval_ms:g} ms apart, with a
QoS 1 paho subscriber in the same process; from the publish_report() call (including the fsync'd
outbox insert) to the subscriber's on_message.

| | p50 ms | p99 ms | max ms |
|---|---|---|---|
| end to end | {percentile(e2e, 50):.2f} | {percentile(e2e, 99):.2f} | {max(e2e):.2f} |
| publish_report() call (durable insert) | {percentile(call, 50):.2f} | {percentile(call, 99):.2f} | {max(call):.2f} |
"""
    publish("mqtt", markdown, args.no_write)


if __name__ == "__main__":
    main()
