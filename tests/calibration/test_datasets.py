"""Calibration frames: selection (spacing, near-duplicates), storage, verification, hashing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest

from agent.sources.frames import Frame
from agent.util.errors import InputError
from calibration.datasets import (
    current_set,
    hamming,
    load_set,
    perceptual_hash,
    pixel_hash,
    select_frames,
    write_set,
)


def frames_from(lfw: Tuple[np.ndarray, List[str]], times: List[float]) -> List[Frame]:
    images = lfw[0]
    return [Frame(np.ascontiguousarray(images[i % len(images)]), i, t, f"crop{i}") for i, t in enumerate(times)]


def test_perceptual_hash_sees_through_small_changes_but_not_different_images(lfw) -> None:
    face, other = lfw[0][0], lfw[0][150]
    noisy = np.clip(face.astype(np.int16) + np.random.default_rng(0).integers(-2, 3, face.shape), 0, 255).astype(
        np.uint8
    )
    assert hamming(perceptual_hash(face), perceptual_hash(noisy)) <= 4
    assert hamming(perceptual_hash(face), perceptual_hash(other)) > 10
    assert perceptual_hash(face) == perceptual_hash(np.dstack([face] * 3))  # grey or BGR, same picture


def test_selection_honours_spacing_and_count(lfw) -> None:
    times = [i * 0.5 for i in range(40)]  # a frame every 0.5 s
    chosen = select_frames(frames_from(lfw, times), count=5, min_spacing_s=2.0, dedup_distance=0)
    kept_times = [f.timestamp for f in chosen.frames]
    assert kept_times == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert chosen.too_close == 12 and chosen.seen == 17


def test_selection_skips_near_duplicates(lfw) -> None:
    image = lfw[0][3]
    stream = [Frame(image, i, float(i), "same") for i in range(5)] + [Frame(lfw[0][120], 5, 5.0, "other")]
    chosen = select_frames(stream, count=10, min_spacing_s=0.0, dedup_distance=4)
    assert [f.index for f in chosen.frames] == [0, 5]
    assert chosen.duplicates == 4


def test_stored_set_round_trips_and_becomes_current(tmp_path: Path, lfw) -> None:
    chosen = select_frames(frames_from(lfw, [float(i) for i in range(10)]), 10, 0.0, 0)
    stored = write_set(str(tmp_path), chosen, "test-source", {"why": "test"})
    manifest = json.loads((stored.folder / "manifest.json").read_text())
    assert manifest["source"] == "test-source" and len(manifest["frames"]) == 10
    assert manifest["frames"][0]["sha256"] == pixel_hash(lfw[0][0])
    assert all(len(f["phash"]) == 16 for f in manifest["frames"])
    again = current_set(str(tmp_path))
    assert again is not None and again.calibration_hash == stored.calibration_hash
    assert np.array_equal(again.images()[4], lfw[0][4])
    assert not list(tmp_path.glob(".calibration-*"))  # no staging left behind


def test_set_hash_depends_on_pixels(tmp_path: Path, lfw) -> None:
    first = write_set(str(tmp_path / "a"), select_frames(frames_from(lfw, [0.0, 1.0]), 2, 0.0, 0), "s", {})
    frames = frames_from(lfw, [0.0, 1.0])
    frames[1].image = frames[1].image.copy()
    frames[1].image[0, 0] ^= 1
    second = write_set(str(tmp_path / "b"), select_frames(frames, 2, 0.0, 0), "s", {})
    assert first.calibration_hash != second.calibration_hash


def test_tampered_frame_is_refused(tmp_path: Path, lfw) -> None:
    stored = write_set(str(tmp_path), select_frames(frames_from(lfw, [0.0, 1.0, 2.0]), 3, 0.0, 0), "s", {})
    victim = stored.paths[1]
    victim.write_bytes(victim.read_bytes()[:-10])
    with pytest.raises(InputError, match="frame_00001.png"):
        load_set(str(stored.folder))


def test_empty_selection_says_why(tmp_path: Path) -> None:
    from calibration.datasets import Selection

    with pytest.raises(InputError, match="no usable frames"):
        write_set(str(tmp_path), Selection(seen=7, duplicates=7), "cam", {})


def test_no_set_yet_is_none(tmp_path: Path) -> None:
    assert current_set(str(tmp_path)) is None


@pytest.mark.parametrize("total, fraction, held", [(10, 0.2, 2), (200, 0.2, 40), (5, 0.0, 0), (1, 0.5, 0), (2, 0.9, 1)])
def test_holdout_split_is_disjoint_and_spread(tmp_path: Path, lfw, total: int, fraction: float, held: int) -> None:
    stored = write_set(
        str(tmp_path), select_frames(frames_from(lfw, [float(i) for i in range(total)]), total, 0.0, 0), "s", {}
    )
    calib, holdout = stored.split(fraction)
    assert len(holdout) == held
    assert sorted(calib + holdout) == list(range(total))
    if held > 1:
        assert holdout[-1] - holdout[0] >= total // 2  # spread over the capture, not one end
