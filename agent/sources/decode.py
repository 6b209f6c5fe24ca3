"""How RTSP streams and video files are decoded: in software, or by Jetson's hardware decoder.

``source.decoder: nvv4l2`` (or ``auto`` where the element exists) builds a GStreamer pipeline
through ``nvv4l2decoder`` (NVDEC) and ``nvvidconv`` (NVMM NV12 to BGRx) instead of decoding on the
CPU. The element and its place come from the Jetson Linux Developer Guide, "Accelerated
GStreamer" (r35.x and r36.x): ``nvv4l2decoder`` decodes H.264 and H.265 (and VP8/VP9/MPEG, AV1 on
AGX Orin) from a parsed byte stream, so a depayloader (RTSP) or demuxer (files) and
``h264parse`` / ``h265parse`` go before it, e.g. ``filesrc ! qtdemux ! h264parse ! nvv4l2decoder``.
Whether the element exists is asked of ``gst-inspect-1.0 --exists`` (GStreamer's gst-inspect
documentation: exit status 0 when the element exists). Pipelines are pure text, tested as such.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Optional

from agent.util.errors import InputError

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
