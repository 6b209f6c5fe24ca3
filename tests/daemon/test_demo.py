"""README's main-job command: `edge-agent demo` shows the daemon, the monitor and a live swap to INT8.

Run with mosquitto (when installed) and with the embedded minimal broker (always).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from agent.demo.sample import find_mosquitto


@pytest.mark.slow
@pytest.mark.parametrize("broker", [pytest.param("mosquitto", marks=pytest.mark.mqtt), "embedded"])
def test_demo_swaps_to_int8_live_and_exits_0(tmp_path, broker):
    if broker == "mosquitto" and find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    result = subprocess.run(
        [sys.executable, "-m", "agent", "demo", "--broker", broker, "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert ("mosquitto on 127.0.0.1" if broker == "mosquitto" else "embedded MQTT 3.1.1 broker") in out
    before, _, after = out.partition("edge-agent monitor after the swap:")
    assert "demo-device  online  onnxruntime  fp32" in before
    assert '"status": "swapped"' in out and '"to": "onnxruntime int8"' in out and '"gate_passed": true' in out
    assert "demo-device  online  onnxruntime  int8" in after
    assert "daemon exit code 0" in after and "demo-device  stopped  onnxruntime  int8" in after
    assert "ready:" in (tmp_path / "daemon.log").read_text()
