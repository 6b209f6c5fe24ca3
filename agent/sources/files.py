"""File-backed sources: a video file and an image folder, paced to a frame rate like a camera."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Optional

from agent.sources.decode import open_software
from agent.sources.frames import IMAGE_SUFFIXES, Frame, Source, list_images, read_image
from agent.util.errors import InputError

log = logging.getLogger(__name__)


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
    """A video file, decoded by OpenCV (with ``threads`` FFmpeg decoder threads; None: OpenCV's default),
    or through ``pipeline`` (GStreamer, e.g. Jetson's hardware decoder: agent.sources.decode), which is
    re-opened to loop since a pipeline cannot seek back."""

    def __init__(
        self,
        path: str,
        loop: bool = False,
        fps: Optional[float] = None,
        pipeline: Optional[str] = None,
        threads: Optional[int] = None,
    ) -> None:
        if not Path(path).is_file():
            raise InputError(f"source.uri: video file not found: {path}")
        self.uri = path
        self.loop = loop
        self.pipeline = pipeline
        self.threads = threads
        self.capture = self._open()
        self.count = 0
        self.frames_in_pass = 0
        self.pacer = _Pacer(fps)

    def _open(self) -> Any:
        import cv2

        if self.pipeline:
            capture = cv2.VideoCapture(self.pipeline, cv2.CAP_GSTREAMER)
        else:
            capture = open_software(self.uri, self.threads, cv2.CAP_ANY)
        if not capture.isOpened():
            capture.release()
            through = f" through {self.pipeline}" if self.pipeline else ""
            raise InputError(f"source.uri: OpenCV cannot open the video {self.uri}{through}")
        return capture

    def _rewind(self) -> None:
        import cv2

        if self.pipeline:
            self.capture.release()
            self.capture = self._open()
        else:
            self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)

    def read(self) -> Optional[Frame]:
        ok, image = self.capture.read()
        if not ok and self.loop and self.frames_in_pass:
            self._rewind()
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
