"""Wrong and jumping clocks: freshness by the device's clock, send --device-clock, a monotonic rate limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.mqtt.commands import CommandServer
from agent.mqtt.fleet import device_clock_offset
from agent.mqtt.keys import generate
from agent.mqtt.messages import parse_timestamp
from agent.util.processes import stop_process

from .test_commands import KEY, NOW, ask, request

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("clock_proc.py")
DAY = 86400.0


def test_an_expired_refusal_carries_the_device_clock_and_send_derives_the_offset():
    srv = CommandServer("dev1", KEY, {"status": lambda a, p: {}}, clock=lambda: NOW + DAY)
    refused = ask(srv, "status", request("status", {}, epoch=NOW))
    assert refused["error"]["code"] == "expired" and "--device-clock" in refused["error"]["message"]
    assert parse_timestamp(refused["error"]["device_time"]) == pytest.approx(NOW + DAY, abs=0.01)
    assert device_clock_offset(refused, NOW) == pytest.approx(DAY, abs=0.01)
    assert device_clock_offset({"status": "ok", "result": {}}, NOW) is None
    assert ask(srv, "status", request("status", {}, epoch=NOW + DAY, rid="fresh"))["status"] == "ok"


@pytest.mark.parametrize("jump", [-DAY, DAY])
def test_a_wall_clock_jump_neither_locks_out_nor_opens_the_rate_limit(jump):
    wall, mono = [NOW], [100.0]
    srv = CommandServer(
        "dev1",
        KEY,
        {"status": lambda a, p: {}},
        rate_limit_per_min=2,
        max_age_s=10 * DAY,
        clock=lambda: wall[0],
        monotonic=lambda: mono[0],
    )
    codes = [ask(srv, "status", request("status", {}, epoch=wall[0]))["status"] for _ in range(2)]
    assert codes == ["ok", "ok"]
    wall[0] += jump  # NTP sets the clock; 1 s of real time passes
    mono[0] += 1.0
    third = ask(srv, "status", request("status", {}, epoch=wall[0]))
    assert third["error"]["code"] == "rate_limited"  # a jump forward does not open the limit
    mono[0] += 60.0
    assert ask(srv, "status", request("status", {}, epoch=wall[0]))["status"] == "ok"  # nor a jump back lock it


@pytest.mark.mqtt
def test_send_signs_for_a_device_whose_clock_is_a_day_ahead(broker, tmp_path, capsys):
    signer, private_text = generate("ops")
    (tmp_path / "ops.key").write_text(private_text)
    device_keys = tmp_path / "device.keys"
    device_keys.write_text(signer.public_line() + "\n")
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(broker.port), str(DAY), str(device_keys)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(REPO),
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        common = ["clockdev", "status", "--key-file", str(tmp_path / "ops.key")]
        common += ["--broker", f"mqtt://127.0.0.1:{broker.port}", "--wait", "15", "--json"]
        assert main(["send"] + common) == 1
        refused = json.loads(capsys.readouterr().out.splitlines()[-1])
        assert refused["error"]["code"] == "expired"
        assert device_clock_offset(refused, time.time()) == pytest.approx(DAY, abs=30)
        assert main(["send"] + common + ["--device-clock"]) == 0
        captured = capsys.readouterr()
        answer = json.loads(captured.out.splitlines()[-1])
        assert answer["status"] == "ok" and answer["result"]["device_time"] == pytest.approx(time.time() + DAY, abs=30)
        assert "s clock is" in captured.err and "ahead of this machine" in captured.err
    finally:
        stop_process(proc)
