"""preprocess() against the plain numpy formula, bit for bit: its OpenCV arithmetic must not move a pixel."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from agent.model.info import InputSpec
from agent.model.preprocess import preprocess
from tests.foundation.test_units import spec as unit_spec


def spec(**changes: Any) -> InputSpec:
    """The unit tests' spec at a camera-like input size (one sample)."""
    return unit_spec(**{"width": 48, "height": 40, "batch": 1, **changes})


def numpy_reference(frame: np.ndarray, s: InputSpec) -> np.ndarray:
    """The formula written the obvious way (stretch resize only): resize, colour, (x * scale - mean) / std."""
    resized = cv2.resize(frame, (s.width, s.height), interpolation=cv2.INTER_LINEAR)
    if s.color == "GRAY":
        resized = cv2.cvtColor(resized, cv2.COLOR_BGR2GRAY)[:, :, None]
    elif s.color == "RGB":
        resized = resized[:, :, ::-1]
    pixels = resized.astype(np.float32)
    pixels *= s.scale
    pixels -= np.asarray(s.mean, dtype=np.float32)
    pixels /= np.asarray(s.std, dtype=np.float32)
    if s.transpose_hw:
        pixels = pixels.transpose(1, 0, 2)
    if s.layout == "NCHW":
        pixels = pixels.transpose(2, 0, 1)
    return np.ascontiguousarray(pixels)


CASES = [
    spec(),
    spec(scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), layout="NCHW"),
    spec(mean=(127.5, 127.5, 127.5), std=(128.0, 128.0, 128.0), transpose_hw=True),  # MTCNN's ONet
    spec(scale=1 / 255, mean=(0.5,), std=(0.25,), color="GRAY", channels=1),
    spec(scale=1 / 127.5, mean=(1.0, 1.0, 1.0), std=(1.0, 1.0, 1.0), color="BGR", transpose_hw=True, layout="NCHW"),
    spec(width=224, height=224, scale=0.017, mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375)),
]


@pytest.mark.parametrize("s", CASES, ids=lambda s: f"{s.color}-{s.layout}-t{int(s.transpose_hw)}-{s.width}")
def test_preprocess_equals_the_numpy_formula_bit_for_bit(s: InputSpec) -> None:
    rng = np.random.default_rng(7)
    for shape in ((96, 96, 3), (480, 640, 3), (37, 53, 3)):
        frame = rng.integers(0, 256, shape, dtype=np.uint8)
        got, _ = preprocess(frame, s)
        want = numpy_reference(frame, s)
        assert got.shape == want.shape and got.dtype == np.float32 and got.flags.c_contiguous
        assert np.array_equal(got, want), f"max difference {np.abs(got - want).max()}"


def test_a_grey_frame_into_a_colour_input_matches_too() -> None:
    grey = np.random.default_rng(3).integers(0, 256, (60, 80), dtype=np.uint8)
    s = spec(scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    got, _ = preprocess(grey, s)
    want = numpy_reference(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), s)
    assert np.array_equal(got, want)
