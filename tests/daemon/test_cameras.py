"""Camera sources: GStreamer pipelines built from config, V4L2 device names, and the cv2 build check."""

from __future__ import annotations

import cv2
import pytest

from agent.config.load import load_config
from agent.config.sections import SourceConfig
from agent.sources.cameras import (
    csi_pipeline,
    fourcc_code,
    gstreamer_missing_sentence,
    open_camera,
    rtsp_pipeline,
    v4l2_device,
)
from agent.sources.decode import gstreamer_in_build
from agent.util.errors import InputError

BUILD_WITH = (
    "  Video I/O:\n"
    "    DC1394:                      NO\n"
    "    FFMPEG:                      YES\n"
    "    GStreamer:                   YES (1.20.3)\n"
)
BUILD_WITHOUT = "  Video I/O:\n    FFMPEG:                      YES\n    GStreamer:                   NO\n"


def test_csi_pipeline_from_config():
    text = csi_pipeline(1, 1920, 1080, 30.0)
    assert text.startswith(
        "nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM), format=NV12, width=1920, height=1080, "
        "framerate=30/1 ! nvvidconv"
    )
    assert text.endswith("appsink drop=true max-buffers=1 sync=false")
    assert "framerate=29970/1000" in csi_pipeline(0, None, None, 29.97)
    assert "width" not in csi_pipeline(0, None, None, None)


def test_rtsp_pipeline_drops_late_packets():
    text = rtsp_pipeline("rtsp://cam.local:554/stream1", 150)
    assert text.startswith("rtspsrc location=rtsp://cam.local:554/stream1 latency=150 drop-on-latency=true ! decodebin")
    assert text.endswith("appsink drop=true max-buffers=1 sync=false")


def test_gstreamer_detection_from_build_information():
    assert gstreamer_in_build(BUILD_WITH)
    assert not gstreamer_in_build(BUILD_WITHOUT)
    assert not gstreamer_in_build("")
    assert gstreamer_missing_sentence("csi", BUILD_WITH) is None
    assert gstreamer_missing_sentence("v4l2", BUILD_WITHOUT) is None
    sentence = gstreamer_missing_sentence("csi", BUILD_WITHOUT)
    assert sentence and sentence.count(". ") == 0 and "without GStreamer" in sentence
    assert "FFmpeg" in gstreamer_missing_sentence("rtsp", BUILD_WITHOUT)


def test_the_installed_opencv_is_read_correctly():
    info = cv2.getBuildInformation()
    line = next(row for row in info.splitlines() if "GStreamer" in row)
    assert gstreamer_in_build(info) == ("YES" in line)


def test_v4l2_device_forms():
    assert v4l2_device("0") == (0, "/dev/video0")
    assert v4l2_device("/dev/video2") == (2, "/dev/video2")
    assert v4l2_device("/dev/v4l/by-id/usb-cam-video-index0")[0] == "/dev/v4l/by-id/usb-cam-video-index0"
    with pytest.raises(InputError, match="source.uri"):
        v4l2_device("camera")


def test_fourcc():
    assert fourcc_code("MJPG") == cv2.VideoWriter_fourcc(*"MJPG")
    with pytest.raises(InputError, match="source.fourcc"):
        fourcc_code("MJPEG")


def test_missing_cameras_give_errors_naming_the_key(tmp_path):
    cfg = load_config(None, ["source.kind=v4l2", "source.uri=/dev/video57"])
    with pytest.raises(InputError, match="source.uri: cannot open V4L2 camera /dev/video57"):
        open_camera(SourceConfig.from_node(cfg.source))
    cfg = load_config(None, ["source.kind=rtsp", "source.uri=http://x"])
    with pytest.raises(InputError, match="rtsp:// URL"):
        open_camera(SourceConfig.from_node(cfg.source))
    if not gstreamer_in_build(cv2.getBuildInformation()):
        cfg = load_config(None, ["source.kind=csi"])
        with pytest.raises(InputError, match="without GStreamer"):
            open_camera(SourceConfig.from_node(cfg.source))
