"""The link and command server built from the configuration: credentials from files, state paths."""

from __future__ import annotations

import json
import subprocess

import pytest

from agent.config.load import load_config
from agent.config.sections import Config
from agent.mqtt.commands import make_request
from agent.mqtt.link import OUTBOX_FILE, SEQ_FILE, open_command_server, open_link

from .brokers import Broker, mosquitto_pub
from .conftest import KEY, Subscriber, wait_for

pytestmark = pytest.mark.mqtt


@pytest.fixture
def auth_broker(tmp_path):
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "cam", "s3cret"], check=True, timeout=10)
    server = Broker(tmp_path / "auth-broker", password_file=str(passwords)).start()
    yield server
    server.stop()


def secret(path, text):
    path.write_text(text + "\n")
    path.chmod(0o600)
    return str(path)


def config(tmp_path, port, password):
    return Config.from_node(
        load_config(
            None,
            [
                "device.id=cam-9",
                "mqtt.host=127.0.0.1",
                f"mqtt.port={port}",
                "mqtt.username=cam",
                f"mqtt.password_file={secret(tmp_path / 'mqtt.pass', password)}",
                "mqtt.reconnect_min_s=0.1",
                "mqtt.reconnect_max_s=0.5",
                f"commands.key_file={secret(tmp_path / 'command.key', KEY.decode())}",
                f"paths.state_dir={tmp_path / 'state'}",
            ],
        )
    )


def link_of(cfg, commands=None):
    return open_link(cfg.mqtt, cfg.device.id, cfg.paths.state_dir, commands)


def test_link_from_config_authenticates_and_serves_signed_commands(tmp_path, auth_broker):
    cfg = config(tmp_path, auth_broker.port, "s3cret")
    link = link_of(
        cfg, open_command_server(cfg.commands, cfg.device.id, {"status": lambda args, progress: {"serving": True}})
    )
    sub = Subscriber(auth_broker.port, "edge-agent/cam-9/#", ["-u", "cam", "-P", "s3cret"])
    try:
        link.start()
        wait_for(lambda: link.connected, 10, "an authenticated connection")
        link.publish_report("build", {"passed": True})
        request = make_request(KEY, "cam-9", "status", {})
        mosquitto_pub(auth_broker.port, "edge-agent/cam-9/cmd/status", json.dumps(request), "-u", "cam", "-P", "s3cret")
        got = sub.collect(1, timeout=10, where=lambda t, p: t.endswith("/response"))
        assert got and got[0][1]["status"] == "ok" and got[0][1]["result"] == {"serving": True}
        assert (tmp_path / "state" / OUTBOX_FILE).exists() and (tmp_path / "state" / SEQ_FILE).exists()
    finally:
        link.stop(timeout=2)
        sub.close()


def test_a_wrong_password_is_refused_and_counted(tmp_path, auth_broker):
    cfg = config(tmp_path, auth_broker.port, "guess")
    link = link_of(cfg)
    try:
        link.start()
        wait_for(lambda: link.stats["connect_refused"] >= 1, 10, "the refusal")
        assert not link.connected
    finally:
        link.stop(timeout=1)
