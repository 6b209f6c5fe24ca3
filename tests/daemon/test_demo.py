"""README's main-job command: `edge-agent demo` shows the daemon, the monitor and a live swap to INT8.

Run with each broker the demo can start (mosquitto, amqtt) when it is installed; the choice among
them and the message when there is none are tested directly.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from agent.demo.sample import find_amqtt, find_mosquitto
from agent.demo.tour import NO_BROKER, choose_broker
from agent.fleet.store import open_store
from agent.util.errors import EXIT_INPUT, MissingDependency


@pytest.mark.slow
@pytest.mark.parametrize("broker", [pytest.param("mosquitto", marks=pytest.mark.mqtt), "amqtt"])
def test_demo_swaps_to_int8_live_and_exits_0(tmp_path, broker):
    if (find_mosquitto() if broker == "mosquitto" else find_amqtt()) is None:
        pytest.skip(f"{broker} is not installed")
    result = subprocess.run(
        [sys.executable, "-m", "agent", "demo", "--broker", broker, "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert f"{broker} on 127.0.0.1" in out and ("MQTT 5" if broker == "mosquitto" else "MQTT 3.1.1") in out
    before, _, after = out.partition("edge-agent monitor after the swap:")
    assert "demo-device  online  onnxruntime  fp32" in before
    assert '"status": "swapped"' in out and '"to": "onnxruntime int8"' in out and '"gate_passed": true' in out
    assert "demo-device  online  onnxruntime  int8" in after
    assert "daemon exit code 0" in after and "demo-device  stopped  onnxruntime  int8" in after
    assert "ready:" in (tmp_path / "daemon.log").read_text()
    if broker == "mosquitto":  # an MQTT 5 broker: the fleet collector kept the device's history
        assert f"edge-agent fleet serve --store {tmp_path / 'fleet.db'}" in out
        store = open_store(str(tmp_path / "fleet.db"))
        try:
            kinds = {row["device_id"]: row for row in store.devices()}
            assert set(kinds) == {"demo-device"}
            assert len(store.series("demo-device", "telemetry")) >= 2
            assert store.latest("demo-device", "build") is not None and store.latest("demo-device", "status")
            assert store.latest("demo-device", "response") is not None  # `send`'s answers, on its reply topic
            assert store.counts()["quarantined"] == 0
        finally:
            store.close()
    else:
        assert "no fleet collector" in out


def test_auto_prefers_mosquitto_then_amqtt():
    assert choose_broker("auto", "/usr/sbin/mosquitto", "/venv/bin/amqtt") == ("mosquitto", "/usr/sbin/mosquitto")
    assert choose_broker("auto", None, "/venv/bin/amqtt") == ("amqtt", "/venv/bin/amqtt")
    assert choose_broker("amqtt", "/usr/sbin/mosquitto", "/venv/bin/amqtt") == ("amqtt", "/venv/bin/amqtt")


def test_no_broker_is_one_sentence_on_how_to_install_mosquitto_and_exit_2():
    with pytest.raises(MissingDependency) as raised:
        choose_broker("auto", None, None)
    assert str(raised.value) == NO_BROKER and "apt-get install mosquitto" in NO_BROKER
    assert raised.value.exit_code == EXIT_INPUT == 2
    with pytest.raises(MissingDependency, match="--broker mosquitto: mosquitto is not installed"):
        choose_broker("mosquitto", None, "/venv/bin/amqtt")
