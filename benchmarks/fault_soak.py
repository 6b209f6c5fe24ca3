"""Fault soak (issue 15): the daemon for 30 minutes with a fault every minute, in rotation.

Starts a private mosquitto (with persistence, so a restart keeps the watcher's session) and
`edge-agent run --json` on the demo model and looping sample stream (25 fps, telemetry every
1 s, stored, QoS 1), its wall clock adjustable (benchmarks/shifted_clock.py). Every minute one
fault, in turn:

- broker restart: mosquitto stopped, restarted 5 s later on the same port;
- disk full for 20 s: the state dir is a 64 MiB tmpfs (when mounting works: root), filled to
  ENOSPC by a filler file that is then deleted; without mount rights, RLIMIT_FSIZE of the
  running daemon set to the outbox's size (``prlimit(2)``, as tests/faults/test_disk_full.py
  does) instead;
- corrupt file: the configuration replaced by bytes that are not UTF-8 YAML, then SIGHUP; the
  good one is put back (and SIGHUP again) after 20 s;
- clock jump: the daemon's wall clock a day ahead, back again after 20 s.

Measured: the longest gap between two inference results (the ``--json`` lines, timed as they
arrive) outside the fault windows (the fault's duration plus GRACE_S) against
``daemon.max_swap_gap_ms``, and inside each kind of window; every message seq the daemon
numbered vs received by a QoS 1 subscriber vs counted as dropped by the daemon (telemetry's
``dropped``); the daemon never exits; RSS and open fds (benchmarks/soak.py's sampling).
Benchmarks and accuracy checks are off: they pause live inference by design (their report
says so), which would hide the gaps this measures.

    .venv/bin/python -m benchmarks.fault_soak [--minutes 30] [--note TEXT] [--no-write]
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import paho.mqtt.client as paho
import psutil
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.demo import sample as demo
from benchmarks.report import output_options, publish
from benchmarks.soak import SAMPLE_S, resource_trend, sample

FAULT_EVERY_S = 60.0
FAULT_S = 20.0
BROKER_DOWN_S = 5.0
GRACE_S = 5.0
CLOCK_JUMP_S = 86400.0
READY_TIMEOUT_S = 300.0
TMPFS_SIZE = "size=64m"
FAULTS = ("broker_restart", "disk_full", "corrupt_config", "clock_jump")


# ----- pure logic: gaps and accounting -----------------------------------------------------


def overlaps(a: float, b: float, windows: List[Tuple[str, float, float]]) -> Optional[str]:
    """The kind of the first window that the interval [a, b] touches, else None."""
    return next((kind for kind, start, end in windows if a <= end and b >= start), None)


def gaps(times: List[float], windows: List[Tuple[str, float, float]], bound_ms: float) -> Dict[str, float]:
    """The longest gap in ms between consecutive ``times``: ``outside`` every window (with when it
    began, in s from the first time, and how many outside gaps exceeded ``bound_ms``), and inside
    each kind of window (a gap touching a window counts as that window's)."""
    longest: Dict[str, float] = {"outside": 0.0, "outside_at_s": 0.0, "outside_over_bound": 0}
    for a, b in zip(times, times[1:]):
        key, gap = overlaps(a, b, windows) or "outside", (b - a) * 1000.0
        if key == "outside" and gap > longest["outside"]:
            longest["outside_at_s"] = a - times[0]
        if key == "outside" and gap > bound_ms:
            longest["outside_over_bound"] += 1
        longest[key] = max(longest.get(key, 0.0), gap)
    return {k: round(v, 1) for k, v in longest.items()}


def accounting(received: Set[int], dropped: int, wills: int, wills_received: Set[int]) -> Dict[str, int]:
    """Numbered (the start-up will, the run's lowest seq, to the last seq received) vs received vs
    counted dropped vs ``offline`` wills numbered but never published (``wills`` the daemon numbered,
    telemetry's ``wills_numbered``, less those received); ``uncounted`` is what none of them explains."""
    if not received:
        return {"numbered": 0, "received": 0, "missing": 0, "dropped": dropped, "wills_unsent": 0, "uncounted": 0}
    first = min(received) - (0 if min(received) in wills_received else 1)  # the start-up will, received or not
    numbered = max(received) - first + 1
    missing = numbered - len(received)
    unsent = wills - len(wills_received)
    return {
        "numbered": numbered,
        "received": len(received),
        "missing": missing,
        "dropped": dropped,
        "wills_unsent": unsent,
        "uncounted": missing - dropped - unsent,
    }


# ----- the rig -----------------------------------------------------------------------------


def mount_tmpfs(folder: Path) -> bool:
    """A small tmpfs at ``folder`` (mount(8) needs root); False when it cannot be mounted."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", TMPFS_SIZE, "tmpfs", str(folder)], capture_output=True)
    return done.returncode == 0


def fill(path: Path) -> None:
    """Write ``path`` until the file system has no space left (ENOSPC), to the last page."""
    with open(path, "wb", buffering=0) as out:
        for chunk in (b"\0" * (1 << 20), b"\0" * 4096, b"\0"):
            try:
                while True:
                    out.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise


class Watcher:
    """A QoS 1 subscriber to everything the device publishes, in a persistent MQTT 5 session."""

    def __init__(self, port: int) -> None:
        self.seqs: Set[int] = set()
        self.kinds: Dict[int, str] = {}
        self.dropped = 0
        self.wills = 0  # telemetry's wills_numbered
        self.wills_received: Set[int] = set()  # seqs of the offline statuses received
        self.events: List[str] = []
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="fault-soak-watcher", protocol=paho.MQTTv5)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(f"edge-agent/{demo.DEMO_DEVICE}/#", qos=1)
        self.client.on_message = self._message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        self.client.loop_start()

    def _message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            body = json.loads(message.payload)
        except ValueError:
            return
        if isinstance(body.get("seq"), int):
            self.seqs.add(body["seq"])
            self.kinds[body["seq"]] = message.topic.rsplit("/", 1)[-1]
        if message.topic.endswith("/telemetry"):
            self.dropped = max(self.dropped, int(body.get("dropped") or 0))
            self.wills = max(self.wills, int(body.get("wills_numbered") or 0))
        if message.topic.endswith("/status") and body.get("state") == "offline":
            self.wills_received.add(body["seq"])
        if message.topic.endswith("/event"):
            self.events.append(str(body.get("event")))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Rig:
    """Broker, daemon (stdout timed, stderr to daemon.log), its clock offset file and config."""

    def __init__(self, workdir: Path) -> None:
        binary = demo.find_mosquitto()
        if binary is None:
            raise SystemExit("the fault soak needs mosquitto (apt-get install mosquitto)")
        demo.prepare(workdir)
        self.state = workdir / "state"
        self.tmpfs = mount_tmpfs(self.state)
        self.broker = demo.Mosquitto(binary, workdir / "broker")
        with open(self.broker.conf, "a", encoding="utf-8") as conf:
            conf.write(f"persistence true\npersistence_location {workdir / 'broker'}/\n")
        self.broker.start()
        self.config = demo.live_config(workdir, self.broker.port)
        data = yaml.safe_load(self.config.read_text())
        data["schedules"] = {"telemetry_s": 1.0, "benchmark_s": 0.0, "check_s": 0.0}
        data["mqtt"].update(store_telemetry=True, telemetry_qos=1)
        data["results"] = {"enabled": False}  # transient QoS 0 results share the seqs: kept out of the count
        self.good_config = yaml.safe_dump(data, sort_keys=False)
        self.config.write_text(self.good_config)
        self.max_gap_ms = float(data["daemon"]["max_swap_gap_ms"])
        self.offset = workdir / "clock-offset"
        self.offset.write_text("0\n")
        self.log_path = workdir / "daemon.log"
        self.watcher = Watcher(self.broker.port)
        self.results: List[float] = []
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        argv = ["-m", "benchmarks.shifted_clock", str(self.offset), "run", "-c", str(self.config), "--json"]
        self.agent = subprocess.Popen([sys.executable] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.ready = threading.Event()
        threading.Thread(target=self._read_results, daemon=True).start()
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read_results(self) -> None:
        assert self.agent.stdout is not None
        for _ in self.agent.stdout:
            self.results.append(time.monotonic())

    def _read_log(self) -> None:
        assert self.agent.stderr is not None
        with open(self.log_path, "wb") as log:
            for line in self.agent.stderr:
                log.write(line)
                log.flush()
                if b"ready:" in line:
                    self.ready.set()

    # ----- the faults: each injects, sleeps its duration, recovers ---------------------------

    def broker_restart(self) -> None:
        self.broker.stop()
        time.sleep(BROKER_DOWN_S)
        self.broker.start()

    def disk_full(self) -> None:
        if self.tmpfs:
            filler = self.state / "filler"
            fill(filler)
            time.sleep(FAULT_S)
            filler.unlink()
            return
        limit = (self.state / "outbox.sqlite").stat().st_size
        resource.prlimit(self.agent.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        time.sleep(FAULT_S)
        unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        resource.prlimit(self.agent.pid, resource.RLIMIT_FSIZE, unlimited)

    def corrupt_config(self) -> None:
        self.config.write_bytes(b"device: {id: demo-device\n# Z\xfcrich \xff\xfe\x00\n" + os.urandom(64))
        self.agent.send_signal(signal.SIGHUP)
        time.sleep(FAULT_S)
        self.config.write_text(self.good_config)
        self.agent.send_signal(signal.SIGHUP)

    def clock_jump(self) -> None:
        self.offset.write_text(f"{CLOCK_JUMP_S}\n")
        time.sleep(FAULT_S)
        self.offset.write_text("0\n")

    def stop(self) -> Tuple[Optional[int], float]:
        started = time.monotonic()
        code: Optional[int] = None
        if self.agent.poll() is None:
            self.agent.send_signal(signal.SIGTERM)
            try:
                code = self.agent.wait(60)
            except subprocess.TimeoutExpired:
                self.agent.kill()
                self.agent.wait(10)
        else:
            code = self.agent.returncode
        return code, time.monotonic() - started

    def close(self) -> None:
        if self.agent.poll() is None:
            self.agent.kill()
            self.agent.wait(10)
        self.watcher.close()
        self.broker.stop()
        if self.tmpfs:
            subprocess.run(["umount", str(self.state)], check=False)


def soak(workdir: Path, minutes: float, progress: Callable[[str], None]) -> Dict[str, Any]:
    rig = Rig(workdir)
    samples: List[Dict[str, float]] = []
    windows: List[Tuple[str, float, float]] = []
    exited_during: Optional[float] = None
    try:
        if not rig.ready.wait(READY_TIMEOUT_S):
            raise SystemExit(f"the daemon was not ready in {READY_TIMEOUT_S:g} s; see {rig.log_path}")
        process = psutil.Process(rig.agent.pid)
        started = time.monotonic()
        end = started + minutes * 60.0
        next_fault, turn = started + FAULT_EVERY_S / 2, 0
        while time.monotonic() < end:
            if rig.agent.poll() is not None:
                exited_during = time.monotonic() - started
                break
            samples.append(sample(process, started))
            if time.monotonic() >= next_fault:
                kind = FAULTS[turn % len(FAULTS)]
                begin = time.monotonic()
                getattr(rig, kind)()
                windows.append((kind, begin, time.monotonic() + GRACE_S))
                progress(f"{begin - started:7.1f} s  {kind}  ({len(rig.results)} results so far)")
                next_fault, turn = next_fault + FAULT_EVERY_S, turn + 1
            time.sleep(min(SAMPLE_S, max(0.0, next_fault - time.monotonic())))
        code, stop_s = rig.stop()
        time.sleep(3.0)  # the last acknowledged messages reach the watcher
        results = [t for t in rig.results if t >= started]
    finally:
        rig.close()
    counts = accounting(rig.watcher.seqs, rig.watcher.dropped, rig.watcher.wills, rig.watcher.wills_received)
    kinds = rig.watcher.kinds
    missing = sorted(set(range(min(kinds, default=0), max(kinds, default=0) + 1)) - set(kinds))
    return {
        "minutes": minutes,
        "faults": {k: sum(1 for w in windows if w[0] == k) for k in FAULTS},
        "max_swap_gap_ms": rig.max_gap_ms,
        "gap_ms": gaps(results, windows, rig.max_gap_ms),
        "inferences": len(results),
        "fps": round(len(results) / max(1e-9, results[-1] - results[0]), 2) if len(results) > 1 else 0.0,
        "messages": counts,
        "missing_between": [f"{n}: {kinds.get(n - 1)} .. {kinds.get(n + 1)}" for n in missing[:10]],
        "disk_full_by": "tmpfs filled to ENOSPC" if rig.tmpfs else "RLIMIT_FSIZE",
        "storage_full_events": rig.watcher.events.count("storage_full"),
        "config_rejected_events": rig.watcher.events.count("config_rejected"),
        "exited_during_s": exited_during,
        "exit_code": code,
        "stop_s": round(stop_s, 2),
        **resource_trend(samples),
    }


def markdown(r: Dict[str, Any], note: str) -> str:
    gap = r["gap_ms"]
    m = r["messages"]
    inside = ", ".join(f"{k} {gap[k]}" for k in FAULTS if k in gap) or "-"
    faults = ", ".join(f"{k} x{n}" for k, n in r["faults"].items())
    verdict = "within" if gap["outside"] <= r["max_swap_gap_ms"] else "OVER"
    return "\n".join(
        [
            "## Fault soak (benchmarks/fault_soak.py)",
            "",
            f"Method: `edge-agent run --json` for {r['minutes']:g} min on the demo model and looping sample "
            "stream (25 fps), a local",
            "mosquitto with persistence, telemetry every 1 s (stored, QoS 1), benchmarks and checks off (they "
            "pause inference by design),",
            "results over MQTT off (QoS 0 and transient, they would share the seqs counted here).",
            f"A fault every {FAULT_EVERY_S:g} s in rotation: broker restart ({BROKER_DOWN_S:g} s down), disk full "
            f"for {FAULT_S:g} s ({r['disk_full_by']}",
            f"on the state dir), a corrupt configuration + SIGHUP (good one back after {FAULT_S:g} s),",
            f"a wall clock jump of +{CLOCK_JUMP_S:g} s and back after {FAULT_S:g} s (time.time shifted in the daemon "
            "process). Gaps are",
            "between consecutive `--json` result lines as they arrive; a fault's window is its duration plus "
            f"{GRACE_S:g} s. Messages: seqs",
            "numbered (the start-up will to the last received) vs received by a QoS 1 persistent subscriber vs the "
            "daemon's own `dropped` count vs `offline` wills numbered (telemetry `wills_numbered`) but never sent."
            + (f" A short run ({r['minutes']:g} min), not the 30-minute soak." if r["minutes"] < 30 else ""),
            f"Load: {note}" if note else "",
            "",
            "| faults | longest gap outside faults ms (bound) | longest gap inside, per fault ms | inferences (fps) "
            "| seqs numbered / received / missing / counted dropped / unsent wills / uncounted "
            "| daemon exited | exit code, stop s "
            "| RSS start / end / max MB | fds min-max |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| {faults} | {gap['outside']} at {gap['outside_at_s']:g} s ({r['max_swap_gap_ms']:g}, {verdict}; "
            f"{gap['outside_over_bound']:g} over) | {inside} "
            f"| {r['inferences']} ({r['fps']}) "
            f"| {m['numbered']} / {m['received']} / {m['missing']} / {m['dropped']} / {m['wills_unsent']} "
            f"/ {m['uncounted']} "
            f"| {'no' if r['exited_during_s'] is None else 'at %.0f s' % r['exited_during_s']} "
            f"| {r['exit_code']}, {r['stop_s']} "
            f"| {r['rss_mb_start']} / {r['rss_mb_end']} / {r['rss_mb_max']} | {r['fds_min']}-{r['fds_max']} |",
            "",
            f"Events seen: storage_full x{r['storage_full_events']}, config_rejected x{r['config_rejected_events']}. "
            "Missing seqs (the kinds received either side): " + ("; ".join(r["missing_between"]) or "none") + ".",
            "A missing seq is not always a lost message: the link numbers the `offline` will it registers at start and "
            "each reconnect (agent/mqtt/link.py `_set_will`),",
            "which the broker publishes only when the connection ends without a DISCONNECT (never after a clean "
            "stop): the others are the unsent wills.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    output_options(parser, note=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fault-soak-") as tmp:
        r = soak(Path(tmp), args.minutes, lambda line: print(line, flush=True))
    print(json.dumps(r, indent=2))
    publish("fault_soak", markdown(r, args.note), args.no_write)


if __name__ == "__main__":
    main()
