"""README's main-job command: `edge-agent demo` shows the daemon, the monitor and a live swap to INT8."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agent.demo import find_mosquitto

pytestmark = [pytest.mark.slow, pytest.mark.mqtt, pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed")]


def test_demo_swaps_to_int8_live_and_exits_0(tmp_path):
    result = subprocess.run([sys.executable, "-m", "agent", "demo", "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    before, _, after = out.partition("edge-agent monitor after the swap:")
    assert "demo-device  online  onnxruntime  fp32" in before
    assert '"status": "swapped"' in out and '"to": "onnxruntime int8"' in out and '"gate_passed": true' in out
    assert "demo-device  online  onnxruntime  int8" in after
    assert "daemon exit code 0" in after and "demo-device  stopped  onnxruntime  int8" in after
    assert "ready:" in (tmp_path / "daemon.log").read_text()
