"""The configured source, by kind: files here, cameras (V4L2, CSI, RTSP) in agent.sources.cameras."""

from __future__ import annotations

from typing import List, Optional, Sequence

from agent.config.sections import SourceConfig
from agent.sources.cameras import open_camera
from agent.sources.decode import (
    DEMUXERS,
    decode_threads,
    decoder_for,
    gstreamer_in_build,
    nvv4l2_file_pipeline,
    usable_cores,
)
from agent.sources.files import ImageFolderSource, VideoFileSource
from agent.sources.frames import RoundRobinSource, Source
from agent.util.errors import InputError


def open_source(source_cfg: SourceConfig, loop: Optional[bool] = None, sharing: int = 1) -> Source:
    """The configured source. ``loop`` overrides source.loop (one pass for calibration and checks);
    ``sharing``: how many sources are decoded side by side (they share the cores: decode_threads)."""
    looping = source_cfg.loop if loop is None else loop
    kind = source_cfg.kind
    if kind == "images":
        return ImageFolderSource(source_cfg.uri, looping, source_cfg.fps)
    threads = decode_threads(source_cfg.decode_threads, sharing, usable_cores())
    if kind == "file":
        return VideoFileSource(source_cfg.uri, looping, source_cfg.fps, file_pipeline(source_cfg), threads)
    return open_camera(source_cfg, threads)


def open_sources(sources: Sequence[SourceConfig], loop: Optional[bool] = None) -> Source:
    """Every configured source, read in turn (one source: that source itself)."""
    if len(sources) == 1:
        return open_source(sources[0], loop)
    opened: List[Source] = []
    try:
        for source_cfg in sources:
            opened.append(open_source(source_cfg, loop, len(sources)))
    except BaseException:
        for source in opened:
            source.close()
        raise
    return RoundRobinSource(opened, [s.id for s in sources])


def probe_decodable(source_cfg: SourceConfig) -> None:
    """Open a file or image-folder source and read its first frame; InputError naming the source's id
    and uri when it is not decodable (a text file named .mp4, a folder of files that are no images)."""
    where = f"source {source_cfg.id} ({source_cfg.uri})"
    try:
        with open_source(source_cfg, loop=False) as source:
            frame = source.read()
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    if frame is None:
        raise InputError(f"{where}: opens but gives no frame (not decodable video)")


def file_pipeline(source_cfg: SourceConfig) -> Optional[str]:
    """The hardware-decode pipeline for a video file when source.decoder picks nvv4l2, else None (OpenCV decodes).
    auto keeps software decoding for a container the pipeline does not know."""
    if source_cfg.decoder == "software":
        return None
    import cv2

    has_gst = gstreamer_in_build(cv2.getBuildInformation())
    if decoder_for(source_cfg.decoder, has_gst) != "nvv4l2":
        return None
    pipeline = nvv4l2_file_pipeline(source_cfg.uri, source_cfg.codec)
    if pipeline is None and source_cfg.decoder == "nvv4l2":
        raise InputError(
            f"source.decoder nvv4l2: no demuxer known for {source_cfg.uri} (known: {', '.join(sorted(DEMUXERS))})"
        )
    return pipeline
