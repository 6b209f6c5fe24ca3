"""Frame sources. This module holds the file-backed ones (video file, image folder); cameras
(V4L2, CSI, RTSP) and the latest-frame capture thread build on the same ``Source`` interface."""

from __future__ import annotations

import abc
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional

import numpy as np

from .errors import InputError
from .schema import Node

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


@dataclass
class Frame:
    image: np.ndarray  # BGR (or grey) uint8, as OpenCV reads it
    index: int  # position in the source's stream, counting from 0
    timestamp: float  # time.monotonic() when it was read
    origin: str  # file name, or the source's uri


class Source(abc.ABC):
    """A stream of frames. ``read()`` returns None at the end of a source that does not loop."""

    uri: str
    skipped: int = 0  # unreadable items passed over

    @abc.abstractmethod
    def read(self) -> Optional[Frame]:
        """The next frame, or None when the source has ended."""

    def close(self) -> None:
        """Release the device or file."""

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Pacer:
    """Holds a file-backed source to a frame rate, like a camera would be."""

    def __init__(self, fps: Optional[float]) -> None:
        self.period = 1.0 / fps if fps else 0.0
        self.next_time = time.monotonic()

    def wait(self) -> None:
        if self.period:
            delay = self.next_time - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.next_time = max(self.next_time + self.period, time.monotonic() - self.period)


def list_images(folder: str) -> List[Path]:
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"source.uri: image folder not found: {folder}")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_image(path: Path) -> Optional[np.ndarray]:
    """An image as BGR uint8 (grey images stay single-channel), or None if unreadable."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        return None
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(1, int(image.max())))
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


class ImageFolderSource(Source):
    def __init__(self, folder: str, loop: bool = False, fps: Optional[float] = None) -> None:
        self.uri = folder
        self.paths = list_images(folder)
        if not self.paths:
            raise InputError(f"source.uri: no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
        self.loop = loop
        self.position = 0
        self.count = 0
        self.pacer = _Pacer(fps)

    def read(self) -> Optional[Frame]:
        misses = 0
        while misses < len(self.paths):
            if self.position >= len(self.paths):
                if not self.loop:
                    return None
                self.position = 0
            path = self.paths[self.position]
            self.position += 1
            image = read_image(path)
            if image is None:
                misses += 1
                self.skipped += 1
                log.warning("source: %s is not a readable image; skipped", path)
                continue
            self.pacer.wait()
            frame = Frame(image, self.count, time.monotonic(), str(path))
            self.count += 1
            return frame
        raise InputError(f"source.uri: none of the {len(self.paths)} images in {self.uri} is readable")


class VideoFileSource(Source):
    def __init__(self, path: str, loop: bool = False, fps: Optional[float] = None) -> None:
        import cv2

        if not Path(path).is_file():
            raise InputError(f"source.uri: video file not found: {path}")
        self.uri = path
        self.loop = loop
        self.capture = cv2.VideoCapture(path)
        if not self.capture.isOpened():
            raise InputError(f"source.uri: OpenCV cannot open the video {path}")
        self.count = 0
        self.frames_in_pass = 0
        self.pacer = _Pacer(fps)

    def read(self) -> Optional[Frame]:
        import cv2

        ok, image = self.capture.read()
        if not ok and self.loop and self.frames_in_pass:
            self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self.frames_in_pass = 0
            ok, image = self.capture.read()
        if not ok:
            return None
        self.frames_in_pass += 1
        self.pacer.wait()
        frame = Frame(image, self.count, time.monotonic(), self.uri)
        self.count += 1
        return frame

    def close(self) -> None:
        self.capture.release()


def open_source(source_cfg: Node, loop: Optional[bool] = None) -> Source:
    """The configured source. ``loop`` overrides source.loop (one pass for calibration and checks)."""
    looping = source_cfg.loop if loop is None else loop
    kind = source_cfg.kind
    if kind == "images":
        return ImageFolderSource(source_cfg.uri, looping, source_cfg.fps)
    if kind == "file":
        return VideoFileSource(source_cfg.uri, looping, source_cfg.fps)
    from .cameras import open_camera  # V4L2, CSI and RTSP

    return open_camera(source_cfg)
