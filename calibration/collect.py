"""Collect a calibration set from a source: an image folder, a video file, or the configured
camera (frames at least calibration.min_spacing_s apart). Files are read once, without pacing;
the time spacing applies to cameras, whose frames arrive in real time."""

from __future__ import annotations

import os
from typing import Optional

from agent.config.sections import CalibrationConfig, SourceConfig
from agent.sources.files import ImageFolderSource, VideoFileSource
from agent.sources.frames import Source
from agent.sources.open import open_source
from agent.util.errors import InputError
from agent.util.progress import Progress
from calibration.datasets import CalibrationSet, select_frames, write_set

CAMERA = "camera"


def open_calibration_source(source_cfg: SourceConfig, source: Optional[str]) -> Source:
    """``source``: a folder, a video file, 'camera' (the configured source), or None (configured)."""
    if source is None or source == CAMERA:
        if source == CAMERA and source_cfg.kind in ("images", "file"):
            raise InputError(f"--source camera: source.kind is {source_cfg.kind!r}, not a camera (v4l2, csi, rtsp)")
        try:
            return open_source(source_cfg, loop=False)
        except ImportError as exc:
            raise InputError(
                f"source.kind {source_cfg.kind}: camera support is not installed in this version ({exc})"
            ) from None
    source = os.path.abspath(source)
    if os.path.isdir(source):
        return ImageFolderSource(source)
    if os.path.isfile(source):
        return VideoFileSource(source)
    raise InputError(f"--source {source}: not a folder, a video file, or 'camera'")


def is_camera(source: Source) -> bool:
    return not isinstance(source, (ImageFolderSource, VideoFileSource))


def collect(
    settings: CalibrationConfig,
    source_cfg: SourceConfig,
    calibration_dir: str,
    source: Optional[str] = None,
    frames: Optional[int] = None,
    progress: Optional[Progress] = None,
) -> CalibrationSet:
    """Capture, select and store a calibration set under ``calibration_dir`` (paths.calibration_dir);
    it becomes current. ``source``: see open_calibration_source; None is the configured one."""
    count = frames or settings.frames
    with open_calibration_source(source_cfg, source) as stream:
        camera = is_camera(stream)
        spacing = float(settings.min_spacing_s) if camera else 0.0
        own_progress = progress or Progress("calibration frames", count)
        try:
            chosen = select_frames(
                stream, count, spacing, int(settings.dedup_distance), on_keep=lambda n: own_progress.update(1)
            )
        finally:
            if progress is None:
                own_progress.close()
        origin = stream.uri
    recorded = {
        "frames_requested": count,
        "min_spacing_s": spacing,
        "dedup_distance": int(settings.dedup_distance),
        "camera": camera,
    }
    return write_set(calibration_dir, chosen, origin, recorded)
