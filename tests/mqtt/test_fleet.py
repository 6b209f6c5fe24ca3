"""Fleet side: the monitor's view and table, and `edge-agent send` / `monitor` against a live link."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agent.cli.fleet import parse_arguments
from agent.cli.main import main
from agent.mqtt.fleet import FleetView, exit_code, render_table
from agent.mqtt.link import Settings, parse_broker_url
from agent.mqtt.messages import envelope
from agent.util.errors import InputError

from .conftest import KEY, wait_for

REPO = Path(__file__).resolve().parents[2]


def test_fleet_view_collects_one_row_per_device():
    view = FleetView("edge-agent")
    view.update(
        "edge-agent/cam1/status",
        json.dumps(
            envelope(
                "status",
                "cam1",
                1,
                {
                    "state": "online",
                    "version": "0.1.0",
                    "engine": {"backend": "tensorrt", "precision": "int8"},
                    "uptime_s": 5,
                },
            )
        ).encode(),
    )
    view.update(
        "edge-agent/cam1/telemetry",
        json.dumps(
            envelope(
                "telemetry",
                "cam1",
                2,
                {
                    "pipeline": {"fps": 29.5, "latency_ms_p50": 7.25, "latency_ms_p99": 11.0},
                    "system": {"total_mw": 6500.0, "total_rail": "VDD_IN"},
                },
            )
        ).encode(),
    )
    # the shapes agent.daemon publishes: telemetry's system snapshot in mW, a benchmark's power in W
    view.update(
        "edge-agent/cam3/report/benchmark",
        json.dumps(
            envelope(
                "benchmark",
                "cam3",
                1,
                {
                    "precision": "fp16",
                    "throughput_ips": 80.0,
                    "latency_ms": {"p50": 3.0, "p99": 4.0},
                    "power": {"mean_w": 7.25},
                    "energy_mj_per_inference": 90.5,
                    "accuracy": None,
                },
            )
        ).encode(),
    )
    view.update(
        "edge-agent/cam1/report/accuracy",
        json.dumps(envelope("accuracy", "cam1", 3, {"drift": {"status": "alert"}})).encode(),
    )
    record = view.update("edge-agent/cam2/status", b"not json")
    assert view.update("elsewhere/cam1/status", b"{}") is None
    assert record == {"topic": "edge-agent/cam2/status", "device": "cam2", "kind": "status", "payload": "not json"}
    row = view.devices["cam1"]
    assert (
        row["state"],
        row["engine"],
        row["precision"],
        row["fps"],
        row["p50_ms"],
        row["p99_ms"],
        row["power_w"],
        row["mj_per_inference"],
        row["recall"],
    ) == ("online", "tensorrt", "int8", 29.5, 7.25, 11.0, 6.5, None, "alert")
    bench = view.devices["cam3"]
    assert (bench["fps"], bench["p50_ms"], bench["power_w"], bench["mj_per_inference"], bench["precision"]) == (
        None,
        3.0,
        7.25,
        90.5,
        "fp16",
    )
    table = render_table(view.rows()).splitlines()
    assert table[0].split()[:3] == ["device", "online", "engine"]
    assert table[1].split()[:4] == ["cam1", "online", "tensorrt", "int8"] and "alert" in table[1]
    assert table[2].startswith("cam2") and table[2].split()[1] == "-"


def test_exit_code_by_result():
    assert exit_code({"status": "ok", "result": {"passed": True}}) == 0
    assert exit_code({"status": "ok", "result": {"passed": False}}) == 3
    assert exit_code({"status": "error", "error": {}}) == 1
    assert exit_code({"status": "busy"}) == 1
    assert exit_code(None) == 1


def test_parse_arguments_and_broker_urls():
    assert parse_arguments(["precision=int8", "frames=100", "labels={a1: face}", "source=/dev/video0"]) == {
        "precision": "int8",
        "frames": 100,
        "labels": {"a1": "face"},
        "source": "/dev/video0",
    }
    with pytest.raises(InputError, match="KEY=VALUE"):
        parse_arguments(["precision"])
    assert parse_broker_url("mqtt://10.0.0.2:1884") == ("10.0.0.2", 1884, False)
    assert parse_broker_url("mqtts://broker.lan") == ("broker.lan", None, True)
    assert parse_broker_url("localhost:1883") == ("localhost", 1883, False)
    with pytest.raises(ValueError, match="port"):
        parse_broker_url("mqtt://h:99999")
    with pytest.raises(ValueError, match="mqtt://"):
        parse_broker_url("http://h")


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "command.key"
    path.write_text(KEY.decode() + "\n")
    path.chmod(0o600)
    return str(path)


def _serving_link(make_link, broker, protocol="5"):
    release = threading.Event()

    def rebuild(args, progress):
        progress(0.5, "building")
        return {"precision": args["precision"], "passed": args["precision"] != "fp16"}

    settings = Settings("127.0.0.1", broker.port, protocol=protocol, reconnect_min_s=0.1, reconnect_max_s=0.5)
    link = make_link(handlers={"rebuild": rebuild, "status": lambda a, p: {"state": "serving"}}, settings=settings)
    link.start()
    wait_for(lambda: link.connected, 10, "connection")
    time.sleep(0.2)
    return link, release


@pytest.mark.mqtt
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_send_prints_accepted_progress_and_result(make_link, broker, key_file, capsys, protocol):
    _serving_link(make_link, broker, protocol)
    argv = [
        "send",
        "dev1",
        "rebuild",
        "precision=int8",
        "--broker",
        f"mqtt://127.0.0.1:{broker.port}",
        "--key-file",
        key_file,
        "--wait",
        "10",
        "--set",
        f"mqtt.protocol={protocol}",
    ]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("accepted  job=")
    assert lines[1] == "progress  50%  building"
    assert lines[2] == 'ok  {"passed": true, "precision": "int8"}'


@pytest.mark.mqtt
def test_send_exit_codes_for_gate_failure_wrong_key_and_silence(make_link, broker, key_file, tmp_path, capsys):
    _serving_link(make_link, broker)
    common = ["--broker", f"mqtt://127.0.0.1:{broker.port}", "--wait", "10"]
    assert main(["send", "dev1", "rebuild", "precision=fp16", "--key-file", key_file] + common) == 3
    wrong = tmp_path / "wrong.key"
    wrong.write_text("not-the-key")
    assert main(["send", "dev1", "rebuild", "precision=int8", "--key-file", str(wrong), "--json"] + common) == 1
    answer = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert answer["status"] == "error" and answer["error"]["code"] == "bad_signature"
    started = time.monotonic()
    assert (
        main(
            [
                "send",
                "nobody",
                "status",
                "--key-file",
                key_file,
                "--broker",
                f"mqtt://127.0.0.1:{broker.port}",
                "--wait",
                "1",
            ]
        )
        == 1
    )
    assert time.monotonic() - started < 5
    assert "no final answer" in capsys.readouterr().err


@pytest.mark.mqtt
def test_edge_agent_send_as_a_process(make_link, broker, key_file):
    _serving_link(make_link, broker)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "send",
            "dev1",
            "rebuild",
            "precision=int8",
            "--broker",
            f"mqtt://127.0.0.1:{broker.port}",
            "--key-file",
            key_file,
            "--wait",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(REPO),
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()] == ["accepted", "progress", "ok"]


@pytest.mark.mqtt
def test_monitor_streams_json_lines(make_link, broker, capsys):
    link = make_link()
    link.start()
    wait_for(lambda: link.connected, 10, "connection")

    def produce():
        time.sleep(0.7)
        link.publish_telemetry({"fps": 30.0})
        link.publish_report("build", {"precision": "int8", "passed": True})

    threading.Thread(target=produce, daemon=True).start()
    assert main(["monitor", "--broker", f"mqtt://127.0.0.1:{broker.port}", "--json", "--duration", "2"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "status" and records[0]["payload"]["state"] == "online"  # the retained one
    assert "telemetry" in kinds and "report/build" in kinds
    assert all(r["device"] == "dev1" for r in records)


@pytest.mark.mqtt
def test_monitor_without_a_broker_says_so(capsys):
    from .brokers import free_port

    port = free_port()
    assert (
        main(
            [
                "monitor",
                "--broker",
                f"mqtt://127.0.0.1:{port}",
                "--duration",
                "1",
                "--set",
                "mqtt.reconnect_max_s=0.2",
                "--set",
                "mqtt.reconnect_min_s=0.1",
            ]
        )
        == 1
    )
