"""Hardware decoding on Jetson (source.decoder): pipelines as text, the choice, the element probe
through a real gst-inspect-shaped program, and a file source decoded in software where the
element is absent; software decoder threads shared among the sources (source.decode_threads),
checked on the installed OpenCV."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.config.load import load_config
from agent.config.sections import Config
from agent.sources.decode import (
    backend_in_build,
    choose_decoder,
    decode_threads,
    element_exists,
    ffmpeg_in_build,
    nvv4l2_file_pipeline,
    nvv4l2_rtsp_pipeline,
    usable_cores,
)
from agent.sources.files import VideoFileSource
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


def _source(uri: Path, decoder: str, *more: str) -> Config:
    node = load_config(
        None, ["source.kind=file", f"source.uri={uri}", f"source.decoder={decoder}", "source.loop=false", *more]
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


def test_decoder_threads_share_the_cores_among_the_sources() -> None:
    assert decode_threads(None, 1, 2) == 2  # one source: every core, as OpenCV's own default
    assert decode_threads(None, 4, 2) == 1  # more sources than cores: one thread each
    assert decode_threads(None, 3, 8) == 2
    assert decode_threads(None, 0, 4) == 4
    assert decode_threads(None, 1, 64) == 16  # OpenCV's cap, after FFmpeg's warning above 16
    assert decode_threads(3, 4, 2) == 3  # source.decode_threads wins
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)


def test_ffmpeg_is_read_from_the_build_information() -> None:
    info = "  Video I/O:\n    FFMPEG:             YES\n      avcodec:   YES (58.134.100)\n    GStreamer:   NO\n"
    assert ffmpeg_in_build(info) and not backend_in_build(info, "GStreamer")
    assert not ffmpeg_in_build(info.replace("YES\n      avcodec", "NO\n      avcodec"))
    assert ffmpeg_in_build(cv2.getBuildInformation()) == (cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG))


def _frames(source: VideoFileSource) -> list:
    try:
        return [frame.image for frame in iter(source.read, None)]
    finally:
        source.close()


# Decoder threads FFmpeg starts for a source (OS threads of a fresh process, before and after reading).
_COUNT_THREADS = """
import os, sys
import cv2  # noqa: F401 (imported first: its own threads are not the decoder's)
from agent.sources.files import VideoFileSource
def tasks(): return len(os.listdir("/proc/self/task"))
for threads in (1, 3):
    before = tasks()
    source = VideoFileSource(sys.argv[1], threads=threads)
    source.read(); source.read()
    print(tasks() - before)
    source.close()
"""


@pytest.mark.parametrize("configured", [None, 3])
def test_a_file_decodes_with_the_cores_shared_among_four_sources(tmp_path: Path, configured: object) -> None:
    video = tmp_path / "clip.avi"
    _video(video)
    more = [] if configured is None else [f"source.decode_threads={configured}"]
    source = open_source(_source(video, "software", *more).source, sharing=4)
    assert isinstance(source, VideoFileSource)
    assert source.threads == decode_threads(configured, 4, usable_cores())  # type: ignore[arg-type]
    frames = _frames(source)
    plain = _frames(VideoFileSource(str(video)))
    assert len(frames) == len(plain) == 6
    assert all(np.array_equal(a, b) for a, b in zip(frames, plain))


def test_one_decoder_thread_starts_no_thread(tmp_path: Path) -> None:
    """OpenCV 4.7 on takes the thread count (CAP_PROP_N_THREADS); with pip's OpenCV 5.1 (FFmpeg 8)
    MJPEG decodes frame-threaded by default, one OS thread per decoder thread past the first. Older
    OpenCV (4.5.5, the oldest pin, fails an open given the parameter) opens without it."""
    video = tmp_path / "clip.avi"
    _video(video)
    done = subprocess.run(
        [sys.executable, "-c", _COUNT_THREADS, str(video)], capture_output=True, text=True, timeout=60, check=True
    )
    one, three = (int(line) for line in done.stdout.split())
    assert one == 0
    assert 0 <= three <= 2


def test_decode_threads_below_one_is_an_input_error() -> None:
    with pytest.raises(InputError, match="decode_threads"):
        Config.from_node(load_config(None, ["source.kind=file", "source.decode_threads=0"]))
