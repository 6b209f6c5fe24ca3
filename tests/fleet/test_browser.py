"""The dashboard in a real headless browser: Debian's chromium + chromium-driver through Selenium,
pointed at a real `edge-agent fleet serve` process on a store filled by a real `edge-agent fleet
collect` from a real mosquitto and two running daemons (the demo config, tests/faults/daemon_proc.py).

A drift is raised on one device the way it happens in the field: its spot-labeled set is relabeled
(``face`` and ``non_face`` swapped) after its baseline was recorded, so its next check alerts.
Checked as a user would see it: the pages render, the charts hold the devices' data (uPlot's own
data arrays, read from the page, against the store), the drift shows on the drifting device's page
only, and the browser's console has no errors. Skips, saying why, without chromium, its driver or
selenium.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

from agent.fleet import views
from agent.fleet.store import open_store
from tests.faults.daemon_proc import AgentProcess, stop_all, write_config
from tests.mqtt.brokers import Broker, free_port, wait_port

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
DEVICES = ("cam-1", "cam-2")  # cam-2 drifts

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover: CI installs the test extras
    webdriver = None

pytestmark = [
    pytest.mark.mqtt,
    pytest.mark.skipif(
        CHROMIUM is None or DRIVER is None or webdriver is None,
        reason="the browser test needs Debian's chromium and chromium-driver (apt-get install chromium "
        "chromium-driver) and selenium (pip install -e '.[test]')",
    ),
]


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout:.0f} s")
        time.sleep(0.5)


def swap_labels(folder: Path) -> None:
    """Relabel a folders-format spot set: every face is now labeled non_face and the other way round."""
    (folder / "face").rename(folder / "swap")
    (folder / "non_face").rename(folder / "face")
    (folder / "swap").rename(folder / "non_face")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, demo_dir: Path) -> Iterator[Dict[str, Any]]:
    """Broker, collector and two daemons until cam-2 has drifted; then the collector stops (the store
    holds still while the browser looks) and `fleet serve` runs on the store. Yields url and store."""
    work = tmp_path_factory.mktemp("fleet-browser")
    broker = Broker(work / "broker").start()
    url = f"sqlite:///{work / 'fleet.sqlite'}"
    unique = uuid.uuid4().hex[:8]
    collector = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent",
            "fleet",
            "collect",
            "--store",
            url,
            "--broker",
            f"mqtt://127.0.0.1:{broker.port}",
        ]
        + ["--client-id", f"browser-test-{unique}", "--group", f"browser-test-{unique}"],
        cwd=str(REPO),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    server = None
    store = open_store(url)
    try:
        wait_until(lambda: store.schema_version() > 0, 30, "migrated store")
        for name in DEVICES:
            labels = work / name / "spot_labels"
            shutil.copytree(demo_dir / "spot_labels", labels)
            config = write_config(
                work / name,
                demo_dir,
                broker.port,
                device={"id": name},
                schedules={"telemetry_s": 0.5, "benchmark_s": 0.0, "check_s": 4.0},
                accuracy={"spot_labels": str(labels)},
            )
            AgentProcess(config)
        wait_until(lambda: all(len(store.series(d, "accuracy")) >= 1 for d in DEVICES), 120, "first checks")
        swap_labels(work / "cam-2" / "spot_labels")
        wait_until(lambda: any(e.get("event") == "drift" for _, e in store.series("cam-2", "event")), 120, "drift")
        wait_until(lambda: len(store.series("cam-1", "accuracy")) >= 2, 60, "second check on cam-1")
        collector.terminate()
        collector.wait(timeout=30)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "agent", "fleet", "serve", "--store", url, "--listen", f"127.0.0.1:{port}"],
            cwd=str(REPO),
            stdout=subprocess.DEVNULL,
        )
        wait_port(port, timeout=30.0)
        yield {"url": f"http://127.0.0.1:{port}", "store": store}
    finally:
        for proc in (server, collector):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
        stop_all()
        store.close()
        broker.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1200,900",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: Any) -> list:
    return [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


def charts(driver: Any) -> Any:
    """Each chart's name -> its data arrays, once dashboard.js has drawn them."""
    WebDriverWait(driver, 20).until(lambda d: d.execute_script("return !!window.edgeCharts"))
    return driver.execute_script(
        "var out = {}; Object.keys(window.edgeCharts).forEach(function (k) {"
        " out[k] = window.edgeCharts[k].data; }); return out;"
    )


def test_fleet_page_lists_both_devices_sorts_and_filters(fleet: Dict[str, Any], browser: Any) -> None:
    browser.get(fleet["url"] + "/")
    rows = browser.find_elements(By.CSS_SELECTOR, "#fleet tbody tr")
    assert [r.get_attribute("data-device") for r in rows] == list(DEVICES)
    for name in DEVICES:
        cells = {
            c.get_attribute("data-key"): c.text
            for c in browser.find_elements(By.CSS_SELECTOR, f'tr[data-device="{name}"] td')
        }
        assert cells["state"] == "online" and cells["engine"] != "-" and cells["precision"] == "fp32"
        assert float(cells["fps"]) > 0 and float(cells["p99_ms"]) > 0
    recall = {
        n: browser.find_element(By.CSS_SELECTOR, f'tr[data-device="{n}"] td[data-key="recall"]').text for n in DEVICES
    }
    assert recall == {"cam-1": "ok", "cam-2": "alert"}
    browser.find_element(By.CSS_SELECTOR, 'th[data-key="device"] a').click()  # device is sorted: reverse it
    rows = browser.find_elements(By.CSS_SELECTOR, "#fleet tbody tr")
    assert [r.get_attribute("data-device") for r in rows] == list(reversed(DEVICES))
    box = browser.find_element(By.CSS_SELECTOR, 'input[name="q"]')
    box.send_keys("alert")
    box.submit()
    rows = browser.find_elements(By.CSS_SELECTOR, "#fleet tbody tr")
    assert [r.get_attribute("data-device") for r in rows] == ["cam-2"]
    assert console_errors(browser) == []


def test_device_pages_plot_the_devices_data(fleet: Dict[str, Any], browser: Any) -> None:
    for name in DEVICES:
        browser.get(fleet["url"] + "/")
        browser.find_element(By.LINK_TEXT, name).click()
        data = charts(browser)
        assert set(data) == {"latency", "fps", "power", "temperature", "recall"}
        stored = views.telemetry_series(fleet["store"].series(name, "telemetry", limit=2000))
        assert len(stored["t"]) >= 10 and data["fps"][0] == stored["t"]
        assert data["fps"][1] == stored["fps"] and any(v for v in stored["fps"])
        assert data["latency"][1] == stored["latency_p50_ms"] and data["latency"][2] == stored["latency_p99_ms"]
        recalls = views.recall_series(fleet["store"].series(name, "accuracy"))
        assert data["recall"][0] == recalls["t"] and len(recalls["t"]) >= 2
        assert data["recall"][1:4] == [recalls["classes"]["face"][k] for k in ("recall", "high", "low")]
        gaps = "return window.edgeCharts[arguments[0]].series.slice(1).map(function (s) { return s.spanGaps; })"
        assert set(browser.execute_script(gaps, "recall")) == {False}  # a class without support: a gap
        assert set(browser.execute_script(gaps, "latency")) == {True}  # a missed report: the line goes on
        canvases = browser.find_elements(By.CSS_SELECTOR, ".chart canvas")
        assert len(canvases) == 5 and all(c.size["width"] > 100 for c in canvases)
        picture = browser.find_element(By.ID, "confusion")
        assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", picture) > 0
        assert "read-only" in browser.page_source
        assert console_errors(browser) == []


def test_drift_shows_on_the_drifting_devices_page_only(fleet: Dict[str, Any], browser: Any) -> None:
    browser.get(fleet["url"] + "/device/cam-2")
    data = charts(browser)
    assert data["recall"][1][0] == 1.0 and data["recall"][1][-1] == 0.0  # face: every face now reads non_face
    marks = browser.find_elements(By.CSS_SELECTOR, "li.drift-event.alert")
    assert marks and any("per-class recall drift: alert" in m.text for m in marks)
    assert browser.execute_script("return window.edgeCharts.recall.driftMarks") == len(marks)
    assert console_errors(browser) == []
    browser.get(fleet["url"] + "/device/cam-1")
    charts(browser)
    assert browser.find_elements(By.CSS_SELECTOR, "li.drift-event") == []
    assert "no drift reported" in browser.page_source
    assert console_errors(browser) == []


def test_metrics_in_the_browser(fleet: Dict[str, Any], browser: Any) -> None:
    browser.get(fleet["url"] + "/metrics")
    text = browser.find_element(By.TAG_NAME, "body").text
    assert 'edge_agent_drift_status{device="cam-2"} 2.0' in text
    assert 'edge_agent_drift_status{device="cam-1"} 0.0' in text
    assert 'edge_agent_recall{class="face",device="cam-2"} 0.0' in text
    assert console_errors(browser) == []
