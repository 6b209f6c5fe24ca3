"""Hardware decoding on Jetson (source.decoder): pipelines as text, the choice, the element probe
through a real gst-inspect-shaped program, and a file source decoded in software where the
element is absent."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.config.load import load_config
from agent.config.sections import Config
from agent.sources.decode import choose_decoder, element_exists, nvv4l2_file_pipeline, nvv4l2_rtsp_pipeline
from agent.sources.open import open_source
from agent.util.errors import InputError

TAIL = (
    "nvv4l2decoder ! nvvidconv ! video/x-raw, format=BGRx ! videoconvert ! video/x-raw, format=BGR ! "
    "appsink drop=true max-buffers=1 sync=false"
)


def test_rtsp_pipelines_depayload_and_parse_before_the_decoder() -> None:
    assert nvv4l2_rtsp_pipeline("rtsp://cam/1", 150, "h264") == (
        f"rtspsrc location=rtsp://cam/1 latency=150 drop-on-latency=true ! rtph264depay ! h264parse ! {TAIL}"
    )
    assert "rtph265depay ! h265parse ! nvv4l2decoder" in nvv4l2_rtsp_pipeline("rtsp://cam/1", 0, "h265")
    with pytest.raises(InputError, match="source.codec: expected one of h264, h265, got 'vp9'"):
        nvv4l2_rtsp_pipeline("rtsp://cam/1", 0, "vp9")


def test_file_pipelines_pick_the_demuxer_by_container() -> None:
    assert nvv4l2_file_pipeline("/data/shop door.mp4", "h264") == (
        f'filesrc location="/data/shop door.mp4" ! qtdemux ! h264parse ! {TAIL}'
    )
    assert "matroskademux ! h265parse" in str(nvv4l2_file_pipeline("a.MKV", "h265"))
    assert nvv4l2_file_pipeline("a.h264", "h264") == f'filesrc location="a.h264" ! h264parse ! {TAIL}'
    assert nvv4l2_file_pipeline("a.avi", "h264") is None


def test_the_choice_of_decoder() -> None:
    assert choose_decoder("auto", True, True) == "nvv4l2"
    assert choose_decoder("auto", True, False) == choose_decoder("auto", False, False) == "software"
    assert choose_decoder("software", True, True) == "software"
    assert choose_decoder("nvv4l2", True, True) == "nvv4l2"
    with pytest.raises(InputError, match="source.decoder nvv4l2: GStreamer has no nvv4l2decoder element"):
        choose_decoder("nvv4l2", True, False)
    with pytest.raises(InputError, match="source.decoder nvv4l2: this OpenCV has no GStreamer"):
        choose_decoder("nvv4l2", False, True)


def _fake_inspect(folder: Path, body: str) -> None:
    script = folder / "gst-inspect-1.0"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_the_element_probe_asks_gst_inspect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not element_exists("nvv4l2decoder")  # no gst-inspect-1.0 at all
    _fake_inspect(tmp_path, '[ "$1" = "--exists" ] && [ "$2" = "nvv4l2decoder" ]')
    assert element_exists("nvv4l2decoder") and not element_exists("nvjpegdec")
    _fake_inspect(tmp_path, "sleep 5")
    assert not element_exists("nvv4l2decoder", timeout_s=0.2)  # a hung probe is a missing element


def _video(path: Path, frames: int = 6) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for index in range(frames):
        writer.write(np.full((48, 64, 3), index * 30, np.uint8))
    writer.release()


def _source(uri: Path, decoder: str) -> Config:
    node = load_config(
        None, ["source.kind=file", f"source.uri={uri}", f"source.decoder={decoder}", "source.loop=false"]
    )
    return Config.from_node(node)


def test_a_file_decodes_in_software_where_the_hardware_decoder_is_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + os.environ["PATH"])
    _fake_inspect(tmp_path, "exit 1")  # GStreamer without nvv4l2decoder
    video = tmp_path / "clip.avi"
    _video(video)
    source = open_source(_source(video, "auto").source)
    try:
        frames = [source.read() for _ in range(7)]
    finally:
        source.close()
    assert sum(f is not None for f in frames) == 6 and frames[-1] is None
    with pytest.raises(InputError, match="source.decoder nvv4l2"):
        open_source(_source(video, "nvv4l2").source)
