"""The dashboard server over a real store (SQLite and PostgreSQL), through real HTTP; the signed
command form through a real mosquitto to a device's real command server; `fleet serve` as a process."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator, Optional, Tuple

import pytest

from agent.fleet.dashboard import Commander, Dashboard, DashboardServer, parse_listen
from agent.fleet.store import Store, open_store
from agent.mqtt.link import Settings
from tests.mqtt.brokers import free_port, wait_port
from tests.mqtt.conftest import KEY, broker, make_link, wait_for  # noqa: F401 (fixtures)

from . import dashboard_payloads as P

REPO = Path(__file__).resolve().parents[2]


def start(dashboard: Dashboard) -> Tuple[DashboardServer, str]:
    server = DashboardServer(("127.0.0.1", 0), dashboard)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def served(store: Store) -> Iterator[str]:
    P.fill(store)
    server, base = start(Dashboard(store))
    yield base
    server.shutdown()
    server.server_close()


def get(url: str, data: Optional[bytes] = None, headers: Optional[dict] = None) -> Tuple[int, str, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def test_fleet_page_and_api_list_every_device(served: str) -> None:
    status, kind, body = get(served + "/?sort=p99_ms&desc=1")
    assert status == 200 and kind.startswith("text/html")
    html = body.decode()
    assert html.index('data-device="cam-b"') < html.index('data-device="cam-a"')
    status, _, body = get(served + "/api/fleet")
    fleet = {row["device"]: row for row in json.loads(body)}
    assert fleet["cam-a"]["fps"] == 35.0 and fleet["cam-b"]["state"] == "offline"
    assert fleet["cam-b"]["recall"] == "alert" and fleet["cam-b"]["temperature_c"] == 70.0


def test_device_api_holds_the_series_drift_and_builds(served: str) -> None:
    data = json.loads(get(served + "/api/device/cam-b")[2])
    assert data["telemetry"]["fps"] == [15.0] * 4 and data["telemetry"]["power_w"] == [9.0] * 4
    assert data["recall"]["classes"]["face"]["recall"] == [0.9, 0.6]
    assert [m["t"] for m in data["drift"]] == [P.T0 + 60, P.T0 + 61]
    builds = json.loads(get(served + "/api/device/cam-a")[2])["builds"]
    assert builds[0]["deltas_pp"] == {"face": -0.4, "person": 0.2}


def test_device_page_confusion_picture_and_static_files(served: str) -> None:
    status, _, body = get(served + "/device/cam-a")
    assert status == 200 and b'id="device-data"' in body and b"/device/cam-a/confusion.png" in body
    status, kind, picture = get(served + "/device/cam-a/confusion.png")
    assert status == 200 and kind == "image/png" and picture.startswith(b"\x89PNG\r\n\x1a\n")
    status, kind, script = get(served + "/static/uplot/uPlot.iife.min.js")
    assert status == 200 and kind.startswith("text/javascript") and b"uPlot" in script
    assert get(served + "/static/../dashboard.py")[0] == 404
    assert get(served + "/static/%2e%2e/dashboard.py")[0] == 404


def test_each_device_has_its_own_picture_redrawn_for_a_newer_report(store: Store) -> None:
    P.fill(store)
    dashboard = Dashboard(store)
    first_a, b = dashboard.confusion("cam-a"), dashboard.confusion("cam-b")
    assert first_a is not None and b is not None and first_a != b
    assert dashboard.confusion("cam-a") is first_a  # kept, not drawn again
    store.insert(list(P.messages("cam-a", [(90.0, "accuracy", P.accuracy({"face": 0.1, "person": 0.2}))], 100)))
    assert dashboard.confusion("cam-a") not in (None, first_a)
    assert dashboard.confusion("cam-b") is b


def test_unknown_things_are_404_and_a_bad_sort_is_400(served: str) -> None:
    assert get(served + "/device/nobody")[0] == 404
    assert get(served + "/device/cam-b/confusion.png")[0] == 200
    assert get(served + "/nowhere")[0] == 404
    status, _, body = get(served + "/?sort=secret")
    assert status == 400 and b"unknown column 'secret'" in body


def test_read_only_dashboard_refuses_commands(served: str) -> None:
    status, _, body = get(served + "/device/cam-a/command", data=b"command=rebuild&args=")
    assert status == 403 and b"read-only" in body


def test_metrics_route_serves_prometheus_text(served: str) -> None:
    status, kind, body = get(served + "/metrics")
    assert status == 200 and kind.startswith("text/plain")
    assert 'edge_agent_fps{device="cam-a"} 35.0' in body.decode()


@pytest.mark.parametrize("text", ["8080", "host:", "host:port", "h:70000"])
def test_parse_listen_refuses_what_is_not_host_port(text: str) -> None:
    with pytest.raises(ValueError, match="expected HOST:PORT"):
        parse_listen(text)


def test_parse_listen_reads_ipv4_ipv6_and_a_bare_port() -> None:
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen("[::1]:0") == ("::1", 0)
    assert parse_listen(":9000") == ("0.0.0.0", 9000)


@pytest.mark.mqtt
def test_signed_command_form_reaches_the_device_and_shows_its_answer(
    make_link: Any,  # noqa: F811 (the fixture)
    broker: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    def rebuild(args: dict, progress: Any) -> dict:
        progress(0.5, "building")
        return {"precision": args["precision"], "passed": True}

    settings = Settings("127.0.0.1", broker.port, reconnect_min_s=0.1, reconnect_max_s=0.5)
    link = make_link(device="cam-a", handlers={"rebuild": rebuild}, settings=settings)
    link.start()
    wait_for(lambda: link.connected, 10, "connection")
    store = open_store(str(tmp_path / "fleet.sqlite"))
    store.migrate()
    P.fill(store)
    server, base = start(Dashboard(store, Commander(settings, KEY, wait_s=10.0)))
    try:
        page = get(base + "/device/cam-a")[2].decode()
        assert 'id="command"' in page and "read-only" not in page
        form = urllib.parse.urlencode({"command": "rebuild", "args": '{"precision": "int8"}'}).encode()
        status, _, body = get(base + "/device/cam-a/command", data=form)
        answer = body.decode()
        assert status == 200 and 'id="command-answer"' in answer
        assert "accepted  job=" in answer and "progress  50%  building" in answer
        assert "ok  {&quot;passed&quot;: true, &quot;precision&quot;: &quot;int8&quot;}" in answer
        assert "exit code 0" in answer
        bad = urllib.parse.urlencode({"command": "rebuild", "args": "[1]"}).encode()
        assert get(base + "/device/cam-a/command", data=bad)[0] == 400
        other = get(base + "/device/cam-a/command", data=form, headers={"Origin": "http://evil.example"})
        assert other[0] == 403 and b"another site" in other[2]
        assert get(base + "/device/cam-a/command", data=b"command=shutdown")[0] == 400
    finally:
        server.shutdown()
        server.server_close()
        store.close()


def test_fleet_serve_as_a_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.sqlite'}"
    store = open_store(url)
    store.migrate()
    P.fill(store)
    store.close()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "fleet", "serve", "--store", url, "--listen", f"127.0.0.1:{port}"],
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_port(port, timeout=30.0)
        assert proc.stdout is not None
        assert proc.stdout.readline() == f"dashboard on http://127.0.0.1:{port}/ (read-only); /metrics for Prometheus\n"
        assert b"cam-b" in get(f"http://127.0.0.1:{port}/")[2]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    refused = subprocess.run(
        [sys.executable, "-m", "agent", "fleet", "serve", "--store", url, "--listen", "nowhere"],
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "--listen: listen address 'nowhere'" in refused.stderr
