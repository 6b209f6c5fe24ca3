"""The demo's four steps: a private broker, the daemon on the packaged sample, the monitor's table,
a signed INT8 rebuild swapped in while inference goes on, then SIGTERM and a clean stop. With an
MQTT 5 broker (mosquitto) a fleet collector keeps every report in a store in the work directory, and
the demo ends with the command that serves the dashboard on it."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional, Tuple

from agent.config.load import load_config, read_secret
from agent.config.sections import Config
from agent.daemon.swap import EngineState
from agent.demo import sample as demo
from agent.fleet.collector import Collector
from agent.fleet.store import open_store
from agent.mqtt.fleet import monitor, send
from agent.mqtt.link import Settings, settings_from_config
from agent.util.errors import EdgeAgentError, MissingDependency

READY_TIMEOUT_S = 90.0
REBUILD_WAIT_S = 180.0
SETTLE_S = 3.0


NO_BROKER = (
    "the demo needs an MQTT broker: install mosquitto (e.g. `sudo apt-get install mosquitto`), or amqtt "
    "on Python >= 3.10 (`pip install amqtt`, which scripts/demo.sh does when mosquitto is missing)"
)


def choose_broker(choice: str, mosquitto: Optional[str], amqtt: Optional[str]) -> Tuple[str, str]:
    """(kind, binary) for ``--broker`` ``choice`` (auto, mosquitto or amqtt) from what is installed."""
    found = {"mosquitto": mosquitto, "amqtt": amqtt}
    if choice != "auto":
        if choice not in found:
            raise ValueError(f"--broker {choice!r}: expected auto, mosquitto or amqtt")
        binary = found[choice]
        if binary is None:
            raise MissingDependency(f"--broker {choice}: {choice} is not installed; " + NO_BROKER)
        return choice, binary
    kind = next((k for k in ("mosquitto", "amqtt") if found[k] is not None), None)
    if kind is None:
        raise MissingDependency(NO_BROKER)
    return kind, str(found[kind])


def run_demo(workdir_arg: Optional[str], broker_choice: str) -> int:
    """The four steps; returns the exit code (0 when the rebuild and the stop both succeeded)."""
    kind, binary = choose_broker(broker_choice, demo.find_mosquitto(), demo.find_amqtt())
    workdir = Path(workdir_arg or tempfile.mkdtemp(prefix="edge-agent-demo-")).resolve()
    demo.prepare(workdir)
    _forget_promotions(workdir)
    say = _printer()
    broker = (demo.Mosquitto if kind == "mosquitto" else demo.Amqtt)(binary, workdir / "broker").start()
    protocol = "5" if kind == "mosquitto" else "3.1.1"  # amqtt speaks MQTT 3.1.1 only
    say(f"demo: files in {workdir}; {kind} on 127.0.0.1:{broker.port} (MQTT {protocol})")
    try:
        return _show(workdir, demo.live_config(workdir, broker.port, protocol), say, collect=protocol == "5")
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


@contextmanager
def _collecting(settings: Settings, cfg: Config, store_path: Path) -> Iterator[None]:
    """A fleet collector (agent.fleet.collector) storing everything the demo device publishes."""
    store = open_store(str(store_path))
    store.migrate()
    collector = Collector(settings, cfg.fleet, store, client_id="edge-agent-demo-collector")
    subscribed, stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=collector.run, args=(stop, lambda _topic: subscribed.set()), daemon=True)
    thread.start()
    subscribed.wait(10.0)
    try:
        yield
    finally:
        stop.set()
        thread.join(15.0)
        store.close()


def _show(workdir: Path, config: Path, say: Callable[[str], None], collect: bool) -> int:
    cfg = Config.from_node(load_config(str(config)))
    settings = settings_from_config(cfg.mqtt)
    if not collect:
        say("demo: no fleet collector (it needs MQTT 5 shared subscriptions; amqtt speaks 3.1.1)")
        return _tour(workdir, config, cfg, settings, say)
    store = workdir / "fleet.db"
    with _collecting(settings, cfg, store):
        code = _tour(workdir, config, cfg, settings, say)
    devices = open_store(str(store))
    try:
        kept = ", ".join(f"{n} {kind}" for kind, n in sorted(devices.counts().items()) if n)
    finally:
        devices.close()
    say(
        f"\ndemo: the fleet collector kept the demo device's history in {store} ({kept}); see it with\n"
        f"  edge-agent fleet serve --store {store}   and open http://127.0.0.1:8080/"
    )
    return code


def _tour(workdir: Path, config: Path, cfg: Config, settings: Settings, say: Callable[[str], None]) -> int:
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
