"""A frame and the ``Source`` interface every source implements (files, cameras, the latest-frame
capture), and reading one image file."""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

import numpy as np

from agent.util.errors import InputError

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


@dataclass
class Frame:
    image: np.ndarray  # BGR (or grey) uint8, as OpenCV reads it
    index: int  # position in the source's stream, counting from 0
    timestamp: float  # time.monotonic() when it was read
    origin: str  # file name, or the source's uri
    source_id: str = ""  # the configured source's id (set by the capture)
    wall_time: float = 0.0  # time.time() when it was read (set by the capture)


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


class RoundRobinSource(Source):
    """Frames from several sources in turn, each tagged with its id; a source that ends leaves the turn.
    Ends when all of them have (pipeline-mode benchmarks over every configured source)."""

    def __init__(self, sources: Sequence[Source], ids: Sequence[str]) -> None:
        self.sources = list(zip(ids, sources))
        self.uri = ", ".join(source.uri for source in sources)
        self.turn = 0

    def read(self) -> Optional[Frame]:
        while self.sources:
            self.turn %= len(self.sources)
            source_id, source = self.sources[self.turn]
            frame = source.read()
            if frame is None:
                self.sources.pop(self.turn)
                continue
            self.turn += 1
            frame.source_id = source_id
            return frame
        return None

    def close(self) -> None:
        for _, source in self.sources:
            source.close()


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
