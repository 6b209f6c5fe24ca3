"""How RTSP streams and video files are decoded: in software, or by Jetson's hardware decoder.

``source.decoder: nvv4l2`` (or ``auto`` where the element exists) builds a GStreamer pipeline
through ``nvv4l2decoder`` (NVDEC) and ``nvvidconv`` (NVMM NV12 to BGRx) instead of decoding on the
CPU. The element and its place come from the Jetson Linux Developer Guide, "Accelerated
GStreamer" (r35.x and r36.x): ``nvv4l2decoder`` decodes H.264 and H.265 (and VP8/VP9/MPEG, AV1 on
AGX Orin) from a parsed byte stream, so a depayloader (RTSP) or demuxer (files) and
``h264parse`` / ``h265parse`` go before it, e.g. ``filesrc ! qtdemux ! h264parse ! nvv4l2decoder``.
Whether the element exists is asked of ``gst-inspect-1.0 --exists`` (GStreamer's gst-inspect
documentation: exit status 0 when the element exists). Pipelines are pure text, tested as such.

In software, OpenCV's FFmpeg backend gives each decoder ``min(cores, 16)`` threads unless told
otherwise (``fill_codec_context`` in opencv/modules/videoio/src/cap_ffmpeg_impl.hpp), so N sources
decoded side by side run N times as many decoder threads as there are cores. ``decode_threads``
shares the cores among the sources instead (``source.decode_threads`` overrides it), passed as the
open parameter ``CAP_PROP_N_THREADS`` (read there in ``CvCapture_FFMPEG::open``). OpenCV 4.5.5 and
4.6 have no such parameter (4.7 has), and 4.5.5 fails an open given one it does not know
("unsupported parameters in .open() ... Bailout"): there it is left out and OpenCV's default stays.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Optional

from agent.util.errors import InputError

# OpenCV's own cap, after FFmpeg's warning that more than 16 threads is not recommended (cap_ffmpeg_impl.hpp).
MAX_DECODE_THREADS = 16
APPSINK = "appsink drop=true max-buffers=1 sync=false"
# NVMM buffers to the BGR frames OpenCV hands over (nvvidconv cannot write BGR itself: BGRx, then videoconvert).
NVMM_TO_BGR = "nvvidconv ! video/x-raw, format=BGRx ! videoconvert ! video/x-raw, format=BGR ! " + APPSINK
CODECS = ("h264", "h265")
# Container suffix -> GStreamer demuxer (gst-plugins-good: qtdemux, matroskademux; -bad: tsdemux); None: raw stream.
DEMUXERS = {
    ".mp4": "qtdemux",
    ".mov": "qtdemux",
    ".m4v": "qtdemux",
    ".mkv": "matroskademux",
    ".webm": "matroskademux",
    ".ts": "tsdemux",
    ".h264": None,
    ".264": None,
    ".h265": None,
    ".265": None,
}


def element_exists(name: str, timeout_s: float = 10.0) -> bool:
    """Whether this machine's GStreamer has element ``name`` (False without gst-inspect-1.0)."""
    inspect = shutil.which("gst-inspect-1.0")
    if inspect is None:
        return False
    try:
        done = subprocess.run(
            [inspect, "--exists", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout_s
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def choose_decoder(setting: str, has_gstreamer: bool, has_nvv4l2: bool) -> str:
    """``nvv4l2`` or ``software`` for source.decoder ``setting`` (auto, software, nvv4l2)."""
    if setting == "software":
        return "software"
    usable = has_gstreamer and has_nvv4l2
    if setting == "nvv4l2" and not usable:
        missing = "this OpenCV has no GStreamer" if not has_gstreamer else "GStreamer has no nvv4l2decoder element"
        raise InputError(f"source.decoder nvv4l2: {missing} (it is part of JetPack's GStreamer); use auto or software")
    return "nvv4l2" if usable else "software"


def decoder_for(setting: str, has_gstreamer: bool) -> str:
    """:func:`choose_decoder` for this machine: probes for nvv4l2decoder only when it could be used."""
    probe = setting != "software" and has_gstreamer and element_exists("nvv4l2decoder")
    return choose_decoder(setting, has_gstreamer, probe)


def _parser(codec: str) -> str:
    if codec not in CODECS:
        raise InputError(f"source.codec: expected one of {', '.join(CODECS)}, got {codec!r}")
    return f"{codec}parse"


def nvv4l2_rtsp_pipeline(uri: str, latency_ms: int, codec: str) -> str:
    """rtspsrc -> RTP depayloader -> parser -> nvv4l2decoder -> BGR appsink, late packets dropped."""
    parser = _parser(codec)
    return (
        f"rtspsrc location={uri} latency={latency_ms} drop-on-latency=true ! rtp{codec}depay ! {parser} ! "
        f"nvv4l2decoder ! {NVMM_TO_BGR}"
    )


def nvv4l2_file_pipeline(path: str, codec: str) -> Optional[str]:
    """filesrc -> demuxer -> parser -> nvv4l2decoder -> BGR appsink; None for a container not in DEMUXERS."""
    suffix = Path(path).suffix.lower()
    if suffix not in DEMUXERS:
        return None
    demuxer = DEMUXERS[suffix]
    head = f'filesrc location="{path}" ! ' + (f"{demuxer} ! " if demuxer else "")
    return f"{head}{_parser(codec)} ! nvv4l2decoder ! {NVMM_TO_BGR}"


def decode_threads(configured: Optional[int], sources: int, cores: int) -> int:
    """FFmpeg decoder threads for one of ``sources`` decoded side by side on ``cores``: ``configured``
    (source.decode_threads), else the cores shared among the sources, at least one each and at most
    MAX_DECODE_THREADS."""
    if configured is not None:
        return configured
    return max(1, min(MAX_DECODE_THREADS, cores // max(1, sources)))


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. systemd's CPUAffinity=)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def open_software(uri: str, threads: Optional[int], api: int) -> Any:
    """A cv2.VideoCapture of ``uri``: OpenCV's FFmpeg backend with ``threads`` decoder threads where this
    OpenCV takes that open parameter and has FFmpeg, else ``cv2.VideoCapture(uri, api)`` (OpenCV's own
    thread count); ``threads`` None: always the latter."""
    import cv2

    n_threads = getattr(cv2, "CAP_PROP_N_THREADS", None)
    if threads is not None and n_threads is not None and ffmpeg_in_build(cv2.getBuildInformation()):
        return cv2.VideoCapture(uri, cv2.CAP_FFMPEG, [n_threads, threads])
    return cv2.VideoCapture(uri, api)


def backend_in_build(build_information: str, backend: str) -> bool:
    """Whether cv2.getBuildInformation() text says video I/O ``backend`` (GStreamer, FFMPEG) is compiled in."""
    match = re.search(rf"^\s*{re.escape(backend)}:\s*(\S+)", build_information, re.MULTILINE)
    return match is not None and match.group(1).upper() not in ("NO", "OFF")


def gstreamer_in_build(build_information: str) -> bool:
    """Whether this OpenCV can open GStreamer pipelines."""
    return backend_in_build(build_information, "GStreamer")


def ffmpeg_in_build(build_information: str) -> bool:
    """Whether this OpenCV decodes through FFmpeg."""
    return backend_in_build(build_information, "FFMPEG")
