"""Fleet simulation: simulated devices -> a private mosquitto -> `edge-agent fleet collect` -> the store.

Devices publish payloads of the schemas' shapes (docs/schemas; the envelope made by
agent.mqtt.messages): telemetry every ``--period`` s, a benchmark and an accuracy report every
``--report-period`` s, each device silent now and then (a random outage; its reports are sent
late, when it is back, as a device's outbox does). Devices are simulated at the topic level:
publisher processes each carry many devices over one MQTT connection (the collector's load is
the same; the broker's connection count is not). Everything goes at QoS 1, telemetry included
(devices default to QoS 0 telemetry, which a stopped collector misses by design), so that every
message can be accounted for.

Measured, in one run, with the collector as a real subprocess (the CLI):

1. drain: messages/s one collector stores from a backlog queued by the broker while it was
   stopped, into SQLite and into PostgreSQL, and two collectors of one group into each;
2. live: N devices for ``--duration`` s into SQLite, end-to-end lag p50/p99 (the store's receive
   time minus the payload's ts), the collector killed with SIGKILL in the middle and restarted:
   rows lost and duplicated afterwards, store growth per device per day.

Run: .venv/bin/python -m benchmarks.fleet_sim [--devices 1000] [--duration 60] [--backlog 20000] [--no-write]
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from benchmarks.report import output_options, publish

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agent.fleet.store import open_store  # noqa: E402
from agent.mqtt.link import Settings, make_client  # noqa: E402
from agent.mqtt.messages import Topics, encode, envelope  # noqa: E402
from agent.util.stats import latency_stats  # noqa: E402
from tests.mqtt.brokers import Broker  # noqa: E402

PREFIX = "edge-agent"
GROUP = "sim-collectors"


# -- payload bodies of the schemas' shapes -------------------------------------------------------


def telemetry_body(rng: random.Random, inferences: int) -> Dict[str, Any]:
    fps = round(rng.uniform(25.0, 31.0), 2)
    return {
        "pipeline": {
            "engine": "centerface-fp16",
            "inferences": inferences,
            "fps": fps,
            "latency_ms_p50": round(rng.uniform(8.0, 10.0), 3),
            "latency_ms_p99": round(rng.uniform(11.0, 16.0), 3),
        },
        "capture": {"frames_read": inferences, "dropped": rng.randint(0, 3), "reopens": 0, "frame_age_ms_p50": 4.1},
        "process": {"rss_mb": round(rng.uniform(300, 320), 1), "open_fds": 41, "threads": 12},
        "system": {
            "total_mw": rng.randint(6500, 8200),
            "total_rail": "VDD_IN",
            "temperatures_c": {"gpu": round(rng.uniform(45, 70), 1), "cpu": round(rng.uniform(40, 60), 1)},
            "gpu_load_pct": rng.randint(40, 90),
        },
        "live_checks": {},
        "dropped": 0,
        "outbox": {"messages": 0, "bytes": 0, "dropped": 0},
    }


def benchmark_body(rng: random.Random) -> Dict[str, Any]:
    p50 = rng.uniform(8.0, 9.0)
    return {
        "mode": "engine",
        "batch": 1,
        "iterations": 1000,
        "duration_s": 9.6,
        "throughput_ips": round(1000.0 / p50, 2),
        "latency_ms": {
            "min": round(p50 * 0.9, 3),
            "mean": round(p50 * 1.02, 3),
            "p50": round(p50, 3),
            "p90": round(p50 * 1.1, 3),
            "p95": round(p50 * 1.15, 3),
            "p99": round(p50 * 1.3, 3),
            "max": round(p50 * 1.8, 3),
        },
        "cov": 0.03,
        "stable": True,
        "stages_ms": {"preprocess": 1.2, "infer": round(p50 - 2.0, 3), "decode": 0.8},
        "power": {"mean_w": round(rng.uniform(6.5, 8.0), 2), "source": "tegrastats", "samples": 96},
        "energy_mj_per_inference": round(rng.uniform(55, 70), 2),
        "context": {"backend": "tensorrt", "precision": "fp16", "batch": 1, "model_sha256": "0" * 64},
        "accuracy": None,
        "accuracy_reason": "benchmark only",
    }


def accuracy_body(rng: random.Random) -> Dict[str, Any]:
    recall = round(rng.uniform(0.88, 0.95), 4)
    return {
        "status": "ok",
        "drift": {"status": "ok", "per_class": {"face": {"recall": recall, "baseline": 0.92}}},
    }


# -- publishers ------------------------------------------------------------------------------------


def publisher_main(argv: Sequence[str]) -> int:
    """One publisher process: devices ``first``..``first+count-1``; writes {device: last seq} to ``out``."""
    port, first, count, duration, period, report_period, outage_p, out = argv
    n_first, n_count, run_s = int(first), int(count), float(duration)
    tel_s, rep_s, p_out = float(period), float(report_period), float(outage_p)
    rng = random.Random(n_first)
    client = make_client(Settings("127.0.0.1", int(port)), f"sim-pub-{n_first}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", int(port), 30)
    client.loop_start()
    devices = [f"sim{n_first + i:05d}" for i in range(n_count)]
    seqs = {d: 0 for d in devices}
    late: Dict[str, List[Dict[str, Any]]] = {d: [] for d in devices}
    down_until = {d: 0.0 for d in devices}
    start = time.time()
    # (due time, device, what): telemetry phases spread over one period, reports over one report period
    due = [(start + rng.uniform(0, tel_s), d, "telemetry") for d in devices]
    due += [(start + rng.uniform(0, rep_s), d, "report") for d in devices]
    heapq.heapify(due)
    infos = []
    while due and due[0][0] <= start + run_s:
        at, device, what = due[0]
        delay = at - time.time()
        if delay > 0:
            time.sleep(min(delay, 0.05))
            continue
        heapq.heappop(due)
        now = time.time()
        t = Topics(PREFIX, device)
        up = now >= down_until[device]
        if up and late[device]:
            for payload in late[device]:  # the outbox replays what was kept during the outage
                infos.append(client.publish(t.report(payload["schema"].split("/")[1]), encode(payload), qos=1))
            late[device] = []
        if what == "telemetry":
            if up:
                seqs[device] += 1
                body = telemetry_body(rng, int((now - start) * 30))
                infos.append(
                    client.publish(t.telemetry, encode(envelope("telemetry", device, seqs[device], body, now)), qos=1)
                )
                if rng.random() < p_out:
                    down_until[device] = now + rng.uniform(2 * tel_s, 6 * tel_s)
            heapq.heappush(due, (at + tel_s, device, what))
        else:
            for kind, body in (("benchmark", benchmark_body(rng)), ("accuracy", accuracy_body(rng))):
                seqs[device] += 1
                payload = envelope(kind, device, seqs[device], body, now)
                if up:
                    infos.append(client.publish(t.report(kind), encode(payload), qos=1))
                else:
                    late[device].append(payload)
            heapq.heappush(due, (at + rep_s, device, what))
    for device, kept in late.items():  # back from the last outages
        for payload in kept:
            infos.append(
                client.publish(Topics(PREFIX, device).report(payload["schema"].split("/")[1]), encode(payload), qos=1)
            )
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()
    Path(out).write_text(json.dumps(seqs))
    return 0


def start_publishers(
    workdir: Path, port: int, devices: int, duration: float, period: float, report_period: float,
    outage_p: float, processes: int,
) -> List["subprocess.Popen[bytes]"]:  # fmt: skip
    per = (devices + processes - 1) // processes
    procs = []
    for k in range(processes):
        first, count = k * per, min(per, devices - k * per)
        if count <= 0:
            break
        out = workdir / f"pub-{k}.json"
        args = [port, first, count, duration, period, report_period, outage_p, out]
        procs.append(
            subprocess.Popen([sys.executable, "-m", "benchmarks.fleet_sim", "--publisher", *map(str, args)], cwd=REPO)
        )
    return procs


def published(workdir: Path) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for path in sorted(workdir.glob("pub-*.json")):
        out.update(json.loads(path.read_text()))
    return out


# -- collectors -------------------------------------------------------------------------------------


def start_collector(port: int, store_url: str, client_id: str, log: Path, group: str) -> "subprocess.Popen[str]":
    command = [
        sys.executable, "-m", "agent", "fleet", "collect", "--broker", f"mqtt://127.0.0.1:{port}",
        "--store", store_url, "--client-id", client_id, "--set", f"fleet.group={group}",
        "--set", "fleet.retention.downsample_after_days=0", "--log-level", "warning",
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=log.open("ab"), text=True)


def wait_ready(proc: "subprocess.Popen[str]") -> None:
    """Until the collector says the broker granted its subscription (its session now queues for it)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("subscribed to"):
            return
    raise RuntimeError(f"the collector exited ({proc.wait()}) before subscribing")


def stop(proc: "subprocess.Popen[str]", sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        proc.wait(30)


def wait_rows(store_url: str, total: int, timeout: float) -> float:
    """Seconds until the store holds ``total`` messages (or the timeout)."""
    store = open_store(store_url)
    store.migrate()
    began = time.monotonic()
    try:
        while time.monotonic() - began < timeout:
            counts = store.counts()
            if sum(v for k, v in counts.items() if k not in ("quarantined", "duplicates")) >= total:
                break
            time.sleep(0.05)
        return time.monotonic() - began
    finally:
        store.close()


def register_sessions(port: int, store_url: str, ids: Sequence[str], workdir: Path, group: str) -> None:
    """Start and cleanly stop each collector once, so the broker holds their sessions and queues for them."""
    procs = [start_collector(port, store_url, cid, workdir / "collector.log", group) for cid in ids]
    for proc in procs:
        wait_ready(proc)
    for proc in procs:
        stop(proc)


def drain(workdir: Path, port: int, store_url: str, collectors: int, backlog: int) -> Dict[str, Any]:
    """Messages/s ``collectors`` collectors store from a backlog queued while they were stopped."""
    group = f"drain-{store_url[:5]}-{collectors}"  # its own group: earlier runs' sessions would take a share
    ids = [f"{group}-{k}" for k in range(collectors)]
    register_sessions(port, store_url, ids, workdir, group)
    devices = max(1, backlog // 20)
    for path in workdir.glob("pub-*.json"):
        path.unlink()
    # 20 telemetry per device, sent as fast as the publishers go (period 0.001 s)
    procs = start_publishers(workdir, port, devices, 0.02, 0.001, 1e9, 0.0, 2)
    for proc in procs:
        proc.wait(600)
    total = sum(published(workdir).values())
    collectors_up = [start_collector(port, store_url, cid, workdir / "collector.log", group) for cid in ids]
    seconds = wait_rows(store_url, total, 300)
    for collector in collectors_up:
        stop(collector)
    store = open_store(store_url)
    ((stored, first, last),) = store._run("SELECT COUNT(*), MIN(received), MAX(received) FROM messages")
    store.close()
    span = max(float(last) - float(first), 1e-9)  # from the first to the last batch committed
    return {"messages": total, "stored": stored, "seconds": span, "rate": stored / span, "wall_rate": total / seconds}


def live(workdir: Path, port: int, store_url: str, args: argparse.Namespace) -> Dict[str, Any]:
    """N devices for the duration into ``store_url``; the collector SIGKILLed halfway and restarted."""
    for path in workdir.glob("pub-*.json"):
        path.unlink()
    log = workdir / "collector.log"
    collector = start_collector(port, store_url, "live-0", log, GROUP)
    wait_ready(collector)
    began = time.time()
    procs = start_publishers(
        workdir, port, args.devices, args.duration, args.period, args.report_period, args.outage_p, args.publishers
    )
    time.sleep(args.duration / 2)
    collector.send_signal(signal.SIGKILL)
    collector.wait(30)
    killed_at = time.time()
    time.sleep(args.down_s)
    collector = start_collector(port, store_url, "live-0", log, GROUP)
    for proc in procs:
        proc.wait(args.duration + 600)
    sent = published(workdir)
    total = sum(sent.values())
    wait_rows(store_url, total, 120)
    stop(collector)
    store = open_store(store_url)
    rows = store._run(
        "SELECT device_id, COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq) FROM messages GROUP BY device_id"
    )
    lags = store._run(
        "SELECT received - ts FROM messages WHERE kind = 'telemetry' AND (received < ? OR received > ?)",
        (killed_at, killed_at + args.down_s + 10.0),
    )
    counts = store.counts()
    store.close()
    held = {device: (n, distinct, lo, hi) for device, n, distinct, lo, hi in rows}
    lost = sum(max(0, want - held.get(device, (0, 0, 0, 0))[1]) for device, want in sent.items())
    duplicated = sum(n - distinct for n, distinct, _, _ in held.values())
    out_of_range = sum(1 for device, (_, _, lo, hi) in held.items() if lo < 1 or hi > sent.get(device, 0))
    lag_ms = latency_stats([float(v) * 1000 for (v,) in lags])
    return {
        "devices": args.devices,
        "published": total,
        "stored": sum(n for n, _, _, _ in held.values()),
        "lost": lost,
        "duplicated": duplicated,
        "out_of_range": out_of_range,
        "redeliveries_dropped": counts["duplicates"],
        "lag_ms": lag_ms,
        "lag_samples": len(lags),
        "seconds": time.time() - began,
        "counts": counts,
    }


def growth(store_url: str, devices: int, seconds: float, path: Optional[Path]) -> Optional[float]:
    """Bytes per device per day of the SQLite file after the live run."""
    if path is None or not path.exists():
        return None
    store = open_store(store_url)
    store._run("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return path.stat().st_size / devices / seconds * 86400


def measure(workdir: Path, args: argparse.Namespace) -> Dict[str, Any]:
    from tests.fleet import postgres

    broker = Broker(workdir / "broker").start()
    pg = None
    try:
        result: Dict[str, Any] = {"load_before": os.getloadavg()[0], "drain": {}}
        reason = postgres.missing()
        if reason is None:
            pg = postgres.Postgres().start()
        stores = {"sqlite": lambda name: f"sqlite:///{workdir / (name + '.sqlite')}"}
        if pg is not None:
            stores["postgresql"] = lambda name: pg.new_database()
        for dialect, make in stores.items():
            for n in (1, 2):
                url = make(f"drain{n}")
                result["drain"][f"{dialect} x{n}"] = drain(workdir, broker.port, url, n, args.backlog)
                print(dialect, n, result["drain"][f"{dialect} x{n}"], flush=True)
        live_path = workdir / "live.sqlite"
        result["live"] = live(workdir, broker.port, f"sqlite:///{live_path}", args)
        result["live"]["bytes_per_device_day"] = growth(
            f"sqlite:///{live_path}", args.devices, args.duration, live_path
        )
        result["postgresql"] = reason or "measured"
        result["load_after"] = os.getloadavg()[0]
        return result
    finally:
        broker.stop()
        if pg is not None:
            pg.stop()


def markdown(result: Dict[str, Any], args: argparse.Namespace) -> str:
    rows = "\n".join(
        f"| {name} | {d['stored']} of {d['messages']} | {d['seconds']:.2f} | {d['rate']:.0f} | {d['wall_rate']:.0f} |"
        for name, d in result["drain"].items()
    )
    lv = result["live"]
    lag = lv["lag_ms"]
    lag_text = f"{lag['p50']:.0f} / {lag['p99']:.0f} / {lag['max']:.0f}"
    growth_line = (
        f"{lv['bytes_per_device_day'] / 1e6:.1f} MB per device per day (SQLite file after the run, telemetry every "
        f"{args.period:g} s, not downsampled)"
        if lv.get("bytes_per_device_day")
        else "not measured"
    )
    pg_note = "" if result["postgresql"] == "measured" else f"\n\nPostgreSQL not measured: {result['postgresql']}."
    return f"""## Fleet collector (benchmarks/fleet_sim.py)

Real mosquitto 2 on loopback, `edge-agent fleet collect` as a subprocess, simulated devices in
{args.publishers} publisher processes publishing payloads of the schemas' shapes at QoS 1. 1-minute load
average {result["load_before"]:.1f} before and {result["load_after"]:.1f} after (the machine is shared by
several engineers).{pg_note}

**Sustained store rate.** A backlog of telemetry queued by the broker while the collectors were
stopped (their sessions persistent), then drained: messages/s from the first to the last batch
committed (the stored rows' receive times), and over the wall time from starting the CLI
processes until the store held every message (their Python start-up included).

| store, collectors | rows stored | seconds | messages/s | messages/s with start-up |
|---|---|---|---|---|
{rows}
| target: SQLite, one collector | | | >= 2000 | |

**Live fleet.** {lv["devices"]} devices, telemetry every {args.period:g} s, a benchmark and an accuracy
report every {args.report_period:g} s, outages (probability {args.outage_p:g} per telemetry, 2 to 6 periods
long; reports sent late on return), {args.duration:g} s, into SQLite. The collector was killed with
SIGKILL halfway and restarted {args.down_s:g} s later (the same client id: the broker had queued the
rest of its session).

| | value |
|---|---|
| messages published (PUBACKed) | {lv["published"]} |
| rows stored | {lv["stored"]} |
| rows lost | {lv["lost"]} |
| rows duplicated | {lv["duplicated"]} |
| redeliveries dropped by (device_id, seq) | {lv["redeliveries_dropped"]} |
| telemetry lag p50 / p99 / max, ms ({lv["lag_samples"]} samples, outside the kill window) | {lag_text} |
| target lag p99 | < 2000 ms |
| store growth | {growth_line} |
"""


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--publisher"]:
        return publisher_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of the live run")
    parser.add_argument("--period", type=float, default=5.0, help="telemetry period, s")
    parser.add_argument("--report-period", type=float, default=180.0, help="benchmark + accuracy period, s")
    parser.add_argument("--outage-p", type=float, default=0.01, help="chance per telemetry that an outage starts")
    parser.add_argument("--down-s", type=float, default=5.0, help="how long the killed collector stays down")
    parser.add_argument("--backlog", type=int, default=20000, help="messages of each drain run")
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes")
    output_options(parser)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        result = measure(Path(tmp), args)
    print(json.dumps(result, indent=2, default=str))
    publish("fleet_sim", markdown(result, args), args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
