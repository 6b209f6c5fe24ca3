"""Camera sources: V4L2 (index or /dev/videoN), CSI (nvarguscamerasrc) and RTSP.

The GStreamer pipelines are built from the config by pure functions (tested as text); OpenCV
opens them. CSI needs an OpenCV built with GStreamer (JetPack's is; pip's opencv-python is not):
``gstreamer_missing_sentence`` says so in one sentence at start. RTSP falls back to OpenCV's
FFmpeg backend when GStreamer is missing; with source.decoder it decodes on Jetson's hardware
decoder (agent.sources.decode).
"""

from __future__ import annotations

import re
import time
from typing import Any, Optional, Tuple

from agent.config.sections import SourceConfig
from agent.sources.decode import (
    APPSINK,
    NVMM_TO_BGR,
    decoder_for,
    gstreamer_in_build,
    nvv4l2_rtsp_pipeline,
    open_software,
)
from agent.sources.frames import Frame, Source
from agent.util.errors import InputError


def gstreamer_missing_sentence(kind: str, build_information: str) -> Optional[str]:
    """One sentence for the log when the configured source needs GStreamer and cv2 lacks it."""
    if kind not in ("csi", "rtsp") or gstreamer_in_build(build_information):
        return None
    fallback = "RTSP falls back to OpenCV's FFmpeg backend" if kind == "rtsp" else "CSI cameras cannot be opened"
    return (
        f"source.kind {kind}: this OpenCV ({_cv2_origin()}) was built without GStreamer, so {fallback}; "
        "on a Jetson use JetPack's python3-opencv (install the venv with --system-site-packages)."
    )


def _cv2_origin() -> str:
    try:
        import cv2

        return f"cv2 {cv2.__version__} from {cv2.__file__}"
    except ImportError:  # pragma: no cover - cv2 is a hard dependency
        return "cv2 not importable"


def csi_pipeline(sensor_id: int, width: Optional[int], height: Optional[int], fps: Optional[float]) -> str:
    """nvarguscamerasrc -> NVMM NV12 -> nvvidconv -> BGRx -> videoconvert -> BGR appsink."""
    caps = ["video/x-raw(memory:NVMM)", "format=NV12"]
    if width and height:
        caps += [f"width={width}", f"height={height}"]
    if fps:
        caps.append(f"framerate={_fraction(fps)}")
    return f"nvarguscamerasrc sensor-id={sensor_id} ! {', '.join(caps)} ! {NVMM_TO_BGR}"


def rtsp_pipeline(uri: str, latency_ms: int) -> str:
    """rtspsrc with a bounded jitter buffer that drops late packets, decoded to BGR."""
    return (
        f"rtspsrc location={uri} latency={latency_ms} drop-on-latency=true ! "
        "decodebin ! videoconvert ! video/x-raw, format=BGR ! " + APPSINK
    )


def _fraction(fps: float) -> str:
    return f"{int(fps)}/1" if float(fps).is_integer() else f"{int(round(fps * 1000))}/1000"


def v4l2_device(uri: str) -> Tuple[Any, str]:
    """'0' or '/dev/video0' -> (what cv2.VideoCapture takes, a display name)."""
    if uri.isdigit():
        return int(uri), f"/dev/video{uri}"
    match = re.fullmatch(r"/dev/video(\d+)", uri)
    if match:
        return int(match.group(1)), uri
    if uri.startswith("/dev/"):
        return uri, uri  # udev symlinks such as /dev/v4l/by-id/...
    raise InputError(f"source.uri: a V4L2 camera is an index or /dev/videoN, got {uri!r}")


def fourcc_code(fourcc: str) -> int:
    if len(fourcc) != 4:
        raise InputError(f"source.fourcc: a pixel format is 4 characters (MJPG, YUYV), got {fourcc!r}")
    return ord(fourcc[0]) | ord(fourcc[1]) << 8 | ord(fourcc[2]) << 16 | ord(fourcc[3]) << 24


class CameraSource(Source):
    """A live camera through cv2.VideoCapture. A read failure ends the stream (the capture thread re-opens)."""

    def __init__(self, capture: Any, uri: str) -> None:
        self.capture = capture
        self.uri = uri
        self.count = 0

    def read(self) -> Optional[Frame]:
        ok, image = self.capture.read()
        if not ok or image is None:
            return None
        frame = Frame(image, self.count, time.monotonic(), self.uri)
        self.count += 1
        return frame

    def close(self) -> None:
        self.capture.release()


def _opened(capture: Any, what: str) -> Any:
    if not capture.isOpened():
        capture.release()
        raise InputError(f"source.uri: cannot open {what}")
    return capture


def open_camera(cfg: SourceConfig, threads: Optional[int] = None) -> Source:
    """The camera source.kind names (v4l2, csi, rtsp), configured from source.*; ``threads``: FFmpeg
    decoder threads of an RTSP stream OpenCV decodes through FFmpeg (None: OpenCV's default)."""
    import cv2

    kind = cfg.kind
    build_info = cv2.getBuildInformation()
    has_gst = gstreamer_in_build(build_info)
    sentence = gstreamer_missing_sentence(kind, build_info)
    if kind == "v4l2":
        device, name = v4l2_device(cfg.uri)
        capture = _opened(cv2.VideoCapture(device, cv2.CAP_V4L2), f"V4L2 camera {name}")
        if cfg.fourcc:
            capture.set(cv2.CAP_PROP_FOURCC, fourcc_code(cfg.fourcc))
        if cfg.width and cfg.height:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
        if cfg.fps:
            capture.set(cv2.CAP_PROP_FPS, cfg.fps)
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # latest frame, not a queue of old ones
        return CameraSource(capture, name)
    if kind == "csi":
        if not has_gst:
            raise InputError(f"source.kind csi: {sentence}")
        pipeline = csi_pipeline(cfg.sensor_id, cfg.width, cfg.height, cfg.fps)
        return CameraSource(
            _opened(cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER), f"CSI sensor {cfg.sensor_id} ({pipeline})"),
            f"csi:{cfg.sensor_id}",
        )
    if kind == "rtsp":
        if not cfg.uri.startswith(("rtsp://", "rtsps://")):
            raise InputError(f"source.uri: an RTSP source needs an rtsp:// URL, got {cfg.uri!r}")
        if decoder_for(cfg.decoder, has_gst) == "nvv4l2":
            pipeline = nvv4l2_rtsp_pipeline(cfg.uri, cfg.rtsp_latency_ms, cfg.codec)
            capture = cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER)
        elif has_gst:
            capture = cv2.VideoCapture(rtsp_pipeline(cfg.uri, cfg.rtsp_latency_ms), cv2.CAP_GSTREAMER)
        else:
            capture = open_software(cfg.uri, threads, cv2.CAP_FFMPEG)
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return CameraSource(_opened(capture, f"RTSP stream {cfg.uri}"), cfg.uri)
    raise InputError(f"source.kind: {kind!r} is not a camera")
