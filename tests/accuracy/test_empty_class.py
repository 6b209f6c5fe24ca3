"""An empty class folder end to end (issue 15, case 10): the real ONet on the demo's LFW crops
with the face folder emptied after a baseline. The class has no recall (null, never 0.0): the
report, drift, the daemon's drift notice, the monitor, the fleet store, dashboard and /metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.accuracy.metrics import NO_SUPPORT
from agent.cli.main import main
from agent.daemon.events import check_drift
from agent.fleet import metrics, pages
from agent.fleet.dashboard import Dashboard
from agent.fleet.ingest import ingest
from agent.fleet.store import Message, open_store
from agent.fleet.views import fleet_row
from agent.mqtt.fleet import FleetView
from agent.mqtt.messages import Topics, encode, envelope
from tests.accuracy.test_check import check_json, demo_args


def test_an_empty_class_folder_has_null_recall_and_raises_no_drift(
    demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = demo_args(demo_dir, tmp_path)
    check_json(capsys, *args, "--save-baseline")
    spot = tmp_path / "spot"
    for path in sorted((demo_dir / "spot_labels" / "non_face").glob("*.png")):
        (spot / "non_face").mkdir(parents=True, exist_ok=True)
        (spot / "non_face" / path.name).write_bytes(path.read_bytes())
    (spot / "face").mkdir()

    report = check_json(capsys, *args, "--labels", str(spot))  # validated against the JSON Schema
    assert report["exit_code"] == 0 and report["samples"] == 100
    face, non_face = report["per_class"]["face"], report["per_class"]["non_face"]
    assert (face["recall"], face["f1"], face["support"], face["recall_ci95"]) == (None, None, 0, [None, None])
    assert face["note"] == NO_SUPPORT
    assert (non_face["recall"], non_face["f1"], non_face["support"]) == (1.0, 1.0, 100) and "note" not in non_face
    assert report["macro"]["recall"] == 1.0 and report["macro"]["f1"] == 1.0  # over non_face alone
    assert any(f"{spot / 'face'}: class 'face' has no images" in e for e in report["errors"])
    drift = report["drift"]
    assert drift["status"] == "ok" and drift["rules_fired"] == []
    assert drift["per_class"]["face"]["status"] == "not_compared"
    assert drift["per_class"]["face"]["note"] == "no samples of this class now"
    assert drift["per_class"]["non_face"]["status"] == "ok"
    assert check_drift(report) is None  # the daemon raises no drift event

    assert main(["check", *args, "--labels", str(spot)]) == 0
    line = next(t for t in capsys.readouterr().out.splitlines() if t.startswith("face "))
    assert line.split()[1:5] == ["0.000", "-", "-", "0"]  # precision, recall, f1, support

    del report["exit_code"]
    topic = Topics("edge-agent", "cam-e").report("accuracy")
    payload = encode(envelope("accuracy", "cam-e", 7, report))
    view = FleetView("edge-agent")
    view.update(topic, payload)
    assert view.rows()[0]["recall"] == "ok"  # the monitor's recall column: the drift status

    store = open_store(f"sqlite:///{tmp_path / 'fleet.sqlite'}")
    store.migrate()
    message = ingest("edge-agent", topic, payload)
    assert isinstance(message, Message) and store.insert([message]) == 1
    got = {(s.name, s.labels): s.value for s in metrics.samples(store.devices())}
    assert got[("edge_agent_recall", ("cam-e", "non_face"))] == 1.0
    assert not [key for key in got if key[1] == ("cam-e", "face")]  # no 0 exported, no sample at all
    assert got[("edge_agent_drift_status", ("cam-e",))] == 0.0
    body, _ = metrics.exposition(store)
    assert b'class="face"' not in body and b'edge_agent_recall{class="non_face",device="cam-e"} 1.0' in body

    dashboard = Dashboard(store)
    data = dashboard.device("cam-e")
    assert data["recall"]["classes"]["face"]["recall"] == [None] and data["drift"] == []
    row = dashboard.row("cam-e")
    assert row is not None and row["recall"] == "ok" and fleet_row(store.devices()[0])["recall"] == "ok"
    html = pages.device_page("cam-e", row, data, has_confusion=True, commands=False)
    assert '<tr class="recall" data-class="face"><td>face</td><td>-</td><td>-</td><td>-</td></tr>' in html
    assert '<tr class="recall" data-class="non_face"><td>non_face</td><td>1.00</td>' in html
    store.close()
