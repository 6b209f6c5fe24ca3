"""The demo's four steps: a private broker, the daemon on the packaged sample, the monitor's table,
a signed INT8 rebuild swapped in while inference goes on, then SIGTERM and a clean stop."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from agent.config.load import load_config, read_secret
from agent.config.sections import Config
from agent.daemon.swap import EngineState
from agent.demo import sample as demo
from agent.demo.minibroker import MiniBroker
from agent.mqtt.fleet import monitor, send
from agent.mqtt.link import settings_from_config
from agent.util.errors import EdgeAgentError, MissingDependency

READY_TIMEOUT_S = 90.0
REBUILD_WAIT_S = 180.0
SETTLE_S = 3.0


def run_demo(workdir_arg: Optional[str], broker_choice: str) -> int:
    """The four steps; returns the exit code (0 when the rebuild and the stop both succeeded)."""
    workdir = Path(workdir_arg or tempfile.mkdtemp(prefix="edge-agent-demo-")).resolve()
    binary = demo.find_mosquitto() if broker_choice != "embedded" else None
    if binary is None and broker_choice == "mosquitto":
        raise MissingDependency("--broker mosquitto: mosquitto is not installed (apt-get install mosquitto)")
    demo.prepare(workdir)
    _forget_promotions(workdir)
    say = _printer()
    if binary is not None:
        broker: Any = demo.Mosquitto(binary, workdir / "broker").start()
        say(f"demo: files in {workdir}; mosquitto on 127.0.0.1:{broker.port}")
        protocol = "5"
    else:
        broker = MiniBroker().start()
        say(
            f"demo: files in {workdir}; mosquitto not found, so a minimal embedded MQTT 3.1.1 broker on "
            f"127.0.0.1:{broker.port}"
        )
        protocol = "3.1.1"
    try:
        return _show(workdir, demo.live_config(workdir, broker.port, protocol), say)
    finally:
        broker.stop()


def _forget_promotions(workdir: Path) -> None:
    """A demo re-run in the same folder starts from FP32 again (engine caches are kept)."""
    state = EngineState(str(workdir / "state"))
    if state.path.exists():
        state.path.unlink()


def _printer() -> Callable[[str], None]:
    def say(text: str) -> None:
        sys.stdout.write(text.rstrip("\n") + "\n")
        sys.stdout.flush()

    return say


def _wait_for_line(log: Path, text: str, proc: "subprocess.Popen[bytes]", timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if text in log.read_text(encoding="utf-8", errors="replace"):
            return True
        time.sleep(0.1)
    return False


def _show(workdir: Path, config: Path, say: Callable[[str], None]) -> int:
    cfg = Config.from_node(load_config(str(config)))
    settings = settings_from_config(cfg.mqtt)
    table = demo.TableSink()
    threading.Thread(
        target=monitor, args=(settings, table), kwargs={"duration": READY_TIMEOUT_S + REBUILD_WAIT_S + 60}, daemon=True
    ).start()
    log = workdir / "daemon.log"
    say("\nstep 1/4  edge-agent run: the daemon builds the FP32 engine and serves the sample stream (25 fps)")
    with open(log, "wb") as stderr:
        agent = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        if not _wait_for_line(log, "ready:", agent, READY_TIMEOUT_S):
            say(f"demo: the daemon did not become ready; its log ({log}):\n" + log.read_text(errors="replace")[-3000:])
            return 1
        time.sleep(SETTLE_S)
        say("\nstep 2/4  edge-agent monitor (telemetry, benchmark and accuracy reports over MQTT):\n")
        say(table.last or "(no reports yet)")
        say(
            f"\nstep 3/4  edge-agent send {demo.DEMO_DEVICE} rebuild precision=int8  (calibrate, gate, swap; "
            "inference goes on)\n"
        )
        key = (read_secret("commands.key_file", cfg.commands.key_file) or "").encode("utf-8")
        try:
            sent = send(
                settings, demo.DEMO_DEVICE, "rebuild", {"precision": "int8"}, key, sys.stdout, wait_s=REBUILD_WAIT_S
            )
        except ConnectionError as exc:
            raise EdgeAgentError(str(exc)) from None
        time.sleep(SETTLE_S)
        say("\nedge-agent monitor after the swap:\n")
        say(table.last)
        say("\nstep 4/4  SIGTERM: the daemon stops capture, finishes in-flight work, publishes 'stopped' and exits")
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(30)
        time.sleep(1.0)
        say(f"daemon exit code {code}\n")
        say(table.last)
        say(f"\ndemo: the daemon's log is {log}; its state (engines, baselines, outbox) is under {workdir / 'state'}")
        return 0 if sent == 0 and code == 0 else 1
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(10)
