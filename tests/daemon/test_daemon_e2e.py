"""`edge-agent run` as a subprocess on the sample stream, with a real mosquitto and a real notify socket.

One daemon per test module: READY and WATCHDOG reach the notify socket; telemetry reaches the
broker; `edge-agent send ... rebuild precision=int8` swaps the INT8 engine in while inference
goes on, within daemon.max_swap_gap_ms; SIGHUP with a bad file keeps the running configuration;
SIGTERM publishes `stopped` and exits 0 within daemon.shutdown_timeout_s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import yaml

from agent.demo.sample import Mosquitto, find_mosquitto
from tests.daemon.conftest import NotifyListener
from tests.mqtt.watcher import Watcher

pytestmark = [
    pytest.mark.slow,
    pytest.mark.mqtt,
    pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed"),
]
DEVICE = "e2e-device"
SHUTDOWN_S = 8.0
MAX_GAP_MS = 500.0


class Agent:
    def __init__(
        self,
        proc: subprocess.Popen,
        config: Path,
        log: Path,
        notify: NotifyListener,
        watcher: Watcher,
        good_config: str,
    ) -> None:
        self.proc, self.config, self.log, self.notify, self.watcher, self.good_config = (
            proc,
            config,
            log,
            notify,
            watcher,
            good_config,
        )

    def send(self, *command: str, wait: float = 120.0) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "agent", "send", DEVICE, *command, "-c", str(self.config), "--wait", str(wait)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=wait + 30)

    def answers(self, *command: str, wait: float = 120.0) -> Tuple[int, List[Dict[str, Any]]]:
        """``send --json``: the exit code and every response, in order."""
        result = self.send(*command, "--json", wait=wait)
        lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        assert lines, result.stdout + result.stderr
        return result.returncode, lines


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, demo_dir: Path) -> Iterator[Agent]:
    work = tmp_path_factory.mktemp("e2e")
    broker = Mosquitto(str(find_mosquitto()), work / "broker").start()
    key = work / "command.key"
    key.write_text("e2e-signing-key-0123456789\n")
    key.chmod(0o600)
    data = yaml.safe_load((demo_dir / "demo.yaml").read_text())
    data["device"]["id"] = DEVICE
    data["model"]["path"] = data["model"]["path"]
    data["source"].update(uri=str(demo_dir / "stream.avi"), loop=True, fps=30.0)
    data["accuracy"]["spot_labels"] = str(demo_dir / "spot_labels")
    data["accuracy"].update(
        shadow_fraction=0.5, shadow_max_per_s=5.0, live_sample_fraction=0.0, label_drop_interval_s=0.5
    )
    data["paths"]["state_dir"] = str(work / "state")
    data["mqtt"] = {"enabled": True, "host": "127.0.0.1", "port": broker.port}
    data["commands"] = {"key_file": str(key)}
    data["schedules"] = {"telemetry_s": 1.0, "benchmark_s": 0.0, "check_s": 0.0}
    data["bench"] = {"warmup_s": 0.2, "min_duration_s": 1.0, "min_iterations": 20}
    data["daemon"] = {"shutdown_timeout_s": SHUTDOWN_S, "max_swap_gap_ms": MAX_GAP_MS}
    config = work / "agent.yaml"
    good = yaml.safe_dump(data, sort_keys=False)
    config.write_text(good)
    notify = NotifyListener(f"/tmp/ea-e2e-{os.getpid()}-{time.monotonic_ns()}")
    notify.read_in_background()
    watcher = Watcher(broker.port, DEVICE)
    log = work / "agent.log"
    env = dict(os.environ, NOTIFY_SOCKET=notify.address, WATCHDOG_USEC="2000000", PYTHONUNBUFFERED="1")
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
            cwd=str(Path(__file__).resolve().parents[2]),
        )
    handle = Agent(proc, config, log, notify, watcher, good)
    try:
        yield handle
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        watcher.close()
        notify.close()
        os.unlink(notify.address)
        broker.stop()


def test_ready_and_watchdog_follow_inference(agent):
    assert agent.notify.seen("READY=1", timeout=60.0), agent.log.read_text()[-3000:]
    ready = next(m for _, m in agent.notify.messages if "READY=1" in m)
    assert "STATUS=serving onnxruntime fp32" in ready
    time.sleep(3.0)
    keepalives = [t for t, line in agent.notify.lines("WATCHDOG")]
    assert len(keepalives) >= 3  # every WATCHDOG_USEC/2 = 1 s while inference progresses
    assert all(b - a >= 0.9 for a, b in zip(keepalives, keepalives[1:]))


def test_reports_arrive_over_mqtt(agent):
    telemetry = agent.watcher.wait("telemetry", lambda b: b["pipeline"]["inferences"] > 0)
    assert telemetry["device_id"] == DEVICE and telemetry["schema"].startswith("edge-agent/telemetry/")
    assert telemetry["capture"]["frames_read"] > 0 and "outbox" in telemetry
    status = agent.watcher.wait("status", lambda b: b["state"] == "online" and b.get("serving"))
    assert status["engine"]["precision"] == "fp32"


def test_no_shadow_while_the_reference_serves_and_no_rollback_without_a_previous_engine(agent):
    telemetry = agent.watcher.wait("telemetry", lambda b: b["pipeline"]["inferences"] > 0)
    shadow = telemetry["live_checks"]["shadow"]
    assert not shadow["enabled"] and "is the FP32 reference" in shadow["skipped"]
    code, answers = agent.answers("rollback", wait=30.0)
    assert code != 0 and answers[-1]["status"] == "error"
    assert "there is no previous engine" in answers[-1]["error"]["message"]


def test_rebuild_to_int8_swaps_without_an_inference_gap(agent):
    before = agent.watcher.wait("telemetry")["pipeline"]["inferences"]
    result = agent.send("rebuild", "precision=int8")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "accepted" in result.stdout
    swap = agent.watcher.wait("event", lambda b: b["event"] == "engine_swapped")
    assert swap["details"]["to"] == "onnxruntime int8" and swap["details"]["within_bound"]
    assert swap["details"]["gap_ms"] <= MAX_GAP_MS
    assert swap["details"]["max_gap_before_ms"] > 0  # inference went on while the engine was built
    build = agent.watcher.wait("report/build", lambda b: b.get("status") == "swapped")
    assert build["build"]["gate"]["passed"] and build["build"]["built_precision"] == "int8"
    after = agent.watcher.wait("telemetry", lambda b: b["pipeline"]["engine"] == "onnxruntime int8", timeout=10.0)
    assert after["pipeline"]["inferences"] > before
    status = agent.watcher.wait("status", lambda b: (b.get("engine") or {}).get("precision") == "int8")
    assert status["state"] == "online"
    engines = json.loads((agent.config.parent / "state" / "daemon" / "engines.json").read_text())
    assert engines["current"]["built_precision"] == "int8" and engines["previous"]["built_precision"] == "fp32"


def test_shadow_evaluation_runs_against_the_int8_engine(agent):
    telemetry = agent.watcher.wait(
        "telemetry", lambda b: b["live_checks"]["shadow"].get("frames", 0) >= 3, timeout=20.0
    )
    shadow = telemetry["live_checks"]["shadow"]
    assert shadow["enabled"] and shadow["failed"] == 0 and shadow["rate_limited"] > 0
    assert shadow["agreement"] >= 0.9 and set(shadow["per_class"]) == {"face", "non_face"}
    assert not agent.watcher.find("event", lambda b: b["event"] == "drift")  # the gated INT8 engine agrees


def test_capture_samples_then_label_over_mqtt_and_by_file_drop(agent):
    code, answers = agent.answers("capture_samples", "count=3", wait=60.0)
    assert code == 0 and [a["status"] for a in answers][0] == "accepted" and answers[-1]["status"] == "ok"
    ids = answers[-1]["result"]["ids"]
    assert len(ids) == 3
    code, answers = agent.answers("label", "labels={%s: face, %s: cat, f99999999: face}" % (ids[0], ids[1]), wait=30.0)
    result = answers[-1]["result"]
    assert code == 0 and result["accepted"] == [ids[0]]
    assert (
        "unknown class 'cat'" in result["refused"][ids[1]] and "no frame 'f99999999'" in result["refused"]["f99999999"]
    )
    drops = agent.config.parent / "state" / "live" / "labels"
    drops.mkdir(parents=True, exist_ok=True)
    (drops / "late.jsonl").write_text(json.dumps({"id": ids[2], "label": "non_face"}) + "\n")
    telemetry = agent.watcher.wait("telemetry", lambda b: b["live_checks"]["live_labels"]["labeled"] == 2, timeout=10.0)
    assert sum(c["n"] for c in telemetry["live_checks"]["live_labels"]["per_class"].values()) == 2
    assert (drops / "done" / "late.jsonl").is_file()


def test_rollback_swaps_the_previous_engine_back_and_forth(agent):
    code, answers = agent.answers("rollback", wait=60.0)
    assert code == 0 and answers[0]["status"] == "accepted", answers
    assert answers[-1]["result"]["serving"]["precision"] == "fp32" and answers[-1]["result"]["to"] == "onnxruntime fp32"
    agent.watcher.wait("event", lambda b: b["event"] == "engine_swapped" and b["details"]["to"] == "onnxruntime fp32")
    engines = json.loads((agent.config.parent / "state" / "daemon" / "engines.json").read_text())
    assert engines["current"]["built_precision"] == "fp32" and engines["previous"]["built_precision"] == "int8"
    code, answers = agent.answers("rollback", wait=60.0)
    assert code == 0 and answers[-1]["result"]["serving"]["precision"] == "int8"
    state = agent.config.parent / "state"  # engines.json keeps paths relative to the state dir
    assert (state / engines["current"]["engine_path"]).is_file()  # the engine swapped out stays in the cache


def test_calibrate_over_mqtt_reports_the_new_set(agent):
    code, answers = agent.answers("calibrate", "frames=12", wait=120.0)
    assert code == 0 and answers[0]["status"] == "accepted", answers
    assert any(a["status"] == "progress" for a in answers)
    result = answers[-1]["result"]
    assert result["frames"] == 12 and len(result["calibration_hash"]) >= 16
    assert Path(result["paths"]["manifest"]).is_file()
    report = agent.watcher.wait("report/calibration", lambda b: b.get("calibration_hash") == result["calibration_hash"])
    assert report["frames"] == 12


def test_a_benchmark_carries_the_accuracy_and_context_of_the_serving_engine(agent):
    code, answers = agent.answers("benchmark", wait=120.0)
    assert code == 0 and answers[-1]["status"] == "ok", answers
    report = agent.watcher.wait("report/benchmark")
    serving = agent.watcher.wait("status", lambda b: b.get("engine"))["engine"]
    assert report["engine"]["precision"] == report["context"]["precision"] == serving["precision"]
    assert report["context"]["backend"] == "onnxruntime" and report["context"]["model_sha256"]
    # no check had run on this engine yet: the daemon ran one, so speed comes with its accuracy
    assert report["accuracy"]["samples"] == 200 and set(report["accuracy"]["recall"]) == {"face", "non_face"}
    assert min(report["accuracy"]["recall"].values()) >= 0.95
    check = agent.watcher.wait("report/accuracy", lambda b: b["engine"]["id"] == report["engine"]["id"])
    assert check["per_class"]["face"]["recall"] == report["accuracy"]["recall"]["face"]
    assert report["power"] is None and report["power_unavailable_reason"]  # no rails on this machine, said why


def test_sighup_with_a_bad_config_keeps_the_running_one(agent):
    agent.config.write_text(agent.good_config.replace("telemetry_s: 1.0", "telemetry_s: -5"))
    agent.proc.send_signal(signal.SIGHUP)
    rejected = agent.watcher.wait("event", lambda b: b["event"] == "config_rejected", timeout=10.0)
    assert any("schedules.telemetry_s" in e for e in rejected["details"]["errors"])
    count = len(agent.watcher.find("telemetry"))
    time.sleep(2.5)
    assert agent.proc.poll() is None and len(agent.watcher.find("telemetry")) >= count + 2  # still 1 s telemetry
    agent.config.write_text(agent.good_config.replace("telemetry_s: 1.0", "telemetry_s: 0.5"))
    agent.proc.send_signal(signal.SIGHUP)
    reloaded = agent.watcher.wait("event", lambda b: b["event"] == "config_reloaded", timeout=10.0)
    assert reloaded["details"]["changed"] == ["schedules"]


def test_sigterm_publishes_stopped_and_exits_0(agent):
    started = time.monotonic()
    agent.proc.send_signal(signal.SIGTERM)
    code = agent.proc.wait(SHUTDOWN_S + 5)
    assert code == 0, agent.log.read_text()[-3000:]
    assert time.monotonic() - started <= SHUTDOWN_S + 2
    stopped = agent.watcher.wait("status", lambda b: b["state"] == "stopped", timeout=5.0)
    assert (stopped.get("engine") or {}).get("precision") == "int8"
    assert agent.notify.seen("STOPPING=1", timeout=2.0)


def test_a_restart_resumes_the_promoted_engine(agent):
    """The INT8 engine promoted by the command serves again after a restart (the config still says fp32)."""
    env = dict(os.environ, NOTIFY_SOCKET=agent.notify.address, WATCHDOG_USEC="2000000")
    with open(agent.log, "a") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "-c", str(agent.config)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
        )
    try:
        assert agent.notify.seen("READY=1\nSTATUS=serving onnxruntime int8", timeout=60.0), agent.log.read_text()[
            -3000:
        ]
        assert "resuming the onnxruntime int8 engine of the last run" in agent.log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(SHUTDOWN_S + 5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_every_payload_the_daemon_published_matches_its_schema(agent):
    from tests.mqtt.schemas import kind_of, validator

    with agent.watcher.lock:
        messages = list(agent.watcher.messages)
    kinds = set()
    for topic, payload in messages:
        if "/cmd/" in f"/{topic}" and not topic.endswith("/response"):
            continue
        kind = kind_of(payload)
        errors = [e.message for e in validator(kind).iter_errors(payload)]
        assert not errors, (topic, errors)
        kinds.add(kind)
    assert {"status", "telemetry", "benchmark", "accuracy", "build", "calibration", "event"} <= kinds
