"""TLS with a CA and a client certificate made here; verification is on."""

from __future__ import annotations

import subprocess
import time

import pytest

from agent.mqtt.link import Settings

from .brokers import Broker
from .certs import make_pki
from .conftest import Subscriber, wait_for

pytestmark = pytest.mark.mqtt


@pytest.fixture
def pki(tmp_path):
    return make_pki(tmp_path / "pki")


@pytest.fixture
def tls_broker(tmp_path, pki):
    server = Broker(tmp_path / "tls-broker", tls=[pki["ca"], pki["server_cert"], pki["server_key"]]).start()
    yield server
    server.stop()


def tls_settings(port, pki, **changes):
    base = Settings(
        "127.0.0.1",
        port,
        tls=True,
        ca_file=pki["ca"],
        cert_file=pki["client_cert"],
        key_file=pki["client_key"],
        reconnect_min_s=0.1,
        reconnect_max_s=0.5,
    )
    return base._replace(**changes)


def test_tls_with_client_certificate_publishes(tls_broker, pki, make_link):
    sub = Subscriber(
        tls_broker.port,
        "edge-agent/tlsdev/report/#",
        ["--cafile", pki["ca"], "--cert", pki["client_cert"], "--key", pki["client_key"]],
    )
    try:
        time.sleep(0.3)
        link = make_link("tlsdev", settings=tls_settings(tls_broker.port, pki))
        link.start()
        link.publish_report("accuracy", {"status": "ok"})
        got = sub.collect(1, timeout=10)
        assert got and got[0][1]["status"] == "ok" and got[0][1]["device_id"] == "tlsdev"
    finally:
        sub.close()


def test_a_broker_certificate_from_another_ca_is_refused(tls_broker, tmp_path, make_link):
    stranger = make_pki(tmp_path / "other", name="other")  # its CA did not sign the broker's certificate
    link = make_link(
        "tlsdev",
        settings=tls_settings(
            tls_broker.port,
            stranger,
            ca_file=stranger["ca"],
            cert_file=stranger["client_cert"],
            key_file=stranger["client_key"],
        ),
    )
    link.start()
    wait_for(lambda: link.stats["connect_failures"] >= 2, 10, "failed TLS handshakes")
    assert not link.connected
    link.publish_report("build", {"n": 1})
    assert link.outbox.count == 1  # kept for when a trusted broker is reachable


def test_the_broker_refuses_a_client_without_a_certificate(tls_broker, pki):
    done = subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(tls_broker.port), "--cafile", pki["ca"], "-t", "x", "-m", "y"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert done.returncode != 0
