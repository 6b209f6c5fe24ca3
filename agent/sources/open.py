"""The configured source, by kind: files here, cameras (V4L2, CSI, RTSP) in agent.sources.cameras."""

from __future__ import annotations

from typing import Optional

from agent.config.sections import SourceConfig
from agent.sources.cameras import open_camera
from agent.sources.files import ImageFolderSource, VideoFileSource
from agent.sources.frames import Source


def open_source(source_cfg: SourceConfig, loop: Optional[bool] = None) -> Source:
    """The configured source. ``loop`` overrides source.loop (one pass for calibration and checks)."""
    looping = source_cfg.loop if loop is None else loop
    kind = source_cfg.kind
    if kind == "images":
        return ImageFolderSource(source_cfg.uri, looping, source_cfg.fps)
    if kind == "file":
        return VideoFileSource(source_cfg.uri, looping, source_cfg.fps)
    return open_camera(source_cfg)
