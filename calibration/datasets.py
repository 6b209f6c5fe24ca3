"""Calibration frames: taken from a source over time (minimum spacing, near-duplicates skipped by
a perceptual hash), stored as lossless PNGs with a manifest, and identified by a hash of their
pixels that enters the engine cache key. Frames are stored as captured; they are preprocessed at
use time by agent.model.preprocess, the very code inference runs."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, cast

import numpy as np

from agent.sources.frames import Frame
from agent.util.errors import InputError
from agent.util.fileio import atomic_write_json, canonical_json, sha256_bytes, sha256_file

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CURRENT = "current.json"
HASH_SIDE = 8  # 8 x 8 = 64-bit difference hash


def perceptual_hash(image: np.ndarray) -> int:
    """64-bit difference hash: grey, 9x8 area resize, one bit per horizontal neighbour comparison."""
    import cv2

    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(grey.reshape(grey.shape[:2]), (HASH_SIDE + 1, HASH_SIDE), interpolation=cv2.INTER_AREA).astype(
        np.int16
    )
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


def pixel_hash(image: np.ndarray) -> str:
    """sha256 of the frame's shape and pixels (independent of how the PNG encoder packs them)."""
    header = f"{image.dtype.str}:{'x'.join(str(d) for d in image.shape)}:".encode()
    return sha256_bytes(header + np.ascontiguousarray(image).tobytes())


@dataclass
class Selection:
    """Frames kept and how many were passed over, by reason."""

    frames: List[Frame] = field(default_factory=list)
    hashes: List[int] = field(default_factory=list)
    too_close: int = 0
    duplicates: int = 0
    seen: int = 0


def select_frames(
    frames: Iterable[Frame],
    count: int,
    min_spacing_s: float,
    dedup_distance: int,
    on_keep: Optional[Callable[[int], None]] = None,
) -> Selection:
    """Keep up to ``count`` frames, at least ``min_spacing_s`` apart by timestamp, skipping any whose
    perceptual hash is within ``dedup_distance`` bits of a frame already kept."""
    chosen = Selection()
    last_time: Optional[float] = None
    for frame in frames:
        chosen.seen += 1
        if last_time is not None and frame.timestamp - last_time < min_spacing_s:
            chosen.too_close += 1
            continue
        digest = perceptual_hash(frame.image)
        if any(hamming(digest, kept) < dedup_distance for kept in chosen.hashes):
            chosen.duplicates += 1
            continue
        chosen.frames.append(frame)
        chosen.hashes.append(digest)
        last_time = frame.timestamp
        if on_keep is not None:
            on_keep(len(chosen.frames))
        if len(chosen.frames) >= count:
            break
    return chosen


def set_hash(frame_hashes: Sequence[str]) -> str:
    """The calibration-set hash: the frames' pixel hashes in order (what calibration actually saw)."""
    return sha256_bytes(canonical_json(list(frame_hashes)).encode())


@dataclass
class CalibrationSet:
    """A stored set: its folder, manifest and the frame files in order."""

    folder: Path
    manifest: Dict[str, Any]

    @property
    def calibration_hash(self) -> str:
        return str(self.manifest["calibration_hash"])

    @property
    def paths(self) -> List[Path]:
        return [self.folder / f["file"] for f in self.manifest["frames"]]

    def images(self) -> List[np.ndarray]:
        import cv2

        return cast(List[np.ndarray], [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in self.paths])

    def split(self, holdout_fraction: float) -> Tuple[List[int], List[int]]:
        """(calibration indices, held-out indices): every k-th frame is held out, so both halves
        span the whole capture period. With fewer than 2 frames nothing is held out."""
        total = len(self.manifest["frames"])
        held = min(total - 1, int(round(total * holdout_fraction))) if total >= 2 else 0
        if held <= 0:
            return list(range(total)), []
        step = total / held  # > 1, so the picks below are distinct and inside the set
        holdout = [int(i * step + step / 2) for i in range(held)]
        return [i for i in range(total) if i not in set(holdout)], holdout


def write_set(root: str, selection: Selection, source: str, settings: Dict[str, Any]) -> CalibrationSet:
    """Store the selected frames and their manifest under ``root/<hash>/`` (built in a temporary
    folder and renamed into place), and point ``root/current.json`` at it."""
    import cv2

    if not selection.frames:
        raise InputError(
            f"calibration source {source}: no usable frames (seen {selection.seen}, "
            f"{selection.too_close} too close in time, {selection.duplicates} near-duplicates)"
        )
    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".calibration-", dir=str(base)))
    try:
        entries: List[Dict[str, Any]] = []
        for number, (frame, phash) in enumerate(zip(selection.frames, selection.hashes)):
            name = f"frame_{number:05d}.png"
            if not cv2.imwrite(str(staging / name), frame.image):
                raise InputError(f"calibration: OpenCV could not write {staging / name}")
            entries.append(
                {
                    "file": name,
                    "index": frame.index,
                    "timestamp": frame.timestamp,
                    "origin": frame.origin,
                    "phash": f"{phash:016x}",
                    "sha256": pixel_hash(frame.image),
                    "file_sha256": sha256_file(staging / name),
                }
            )
        digest = set_hash([e["sha256"] for e in entries])
        manifest = {
            "format_version": FORMAT_VERSION,
            "calibration_hash": digest,
            "source": source,
            "created": time.time(),
            "settings": settings,
            "seen": selection.seen,
            "skipped": {"too_close": selection.too_close, "near_duplicates": selection.duplicates},
            "frames": entries,
        }
        atomic_write_json(staging / MANIFEST, manifest)
        final = base / digest[:16]
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    atomic_write_json(base / CURRENT, {"set": final.name, "calibration_hash": digest})
    return CalibrationSet(final, manifest)


def load_set(folder: str) -> CalibrationSet:
    """Read a set and verify it: format, every frame file's checksum, and the set hash."""
    path = Path(folder)
    manifest_path = path / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"calibration set {manifest_path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"calibration set {manifest_path}: format "
            f"{manifest.get('format_version') if isinstance(manifest, dict) else None}, expected {FORMAT_VERSION}"
        )
    frames = manifest.get("frames") or []
    for entry in frames:
        file = path / str(entry.get("file"))
        if not file.is_file() or sha256_file(file) != entry.get("file_sha256"):
            raise InputError(
                f"calibration set {path}: frame {file.name} is missing or does not match its checksum; calibrate again"
            )
    if not frames or set_hash([str(e.get("sha256")) for e in frames]) != manifest.get("calibration_hash"):
        raise InputError(
            f"calibration set {path}: the manifest's calibration_hash does not match its frames; calibrate again"
        )
    return CalibrationSet(path, manifest)


def current_set(root: str) -> Optional[CalibrationSet]:
    """The set ``root/current.json`` points at, or None when nothing was calibrated yet."""
    pointer = Path(root) / CURRENT
    if not pointer.is_file():
        return None
    try:
        name = json.loads(pointer.read_text(encoding="utf-8"))["set"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{pointer}: unreadable ({exc}); calibrate again") from None
    return load_set(str(Path(root) / str(name)))
