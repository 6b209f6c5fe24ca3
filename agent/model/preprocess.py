"""Frame -> input tensor, exactly as the model spec says. Inference, calibration, benchmarks and
accuracy checks all call this one function, so they all see the same pixels."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, List, Sequence, Tuple

import numpy as np

from agent.model.info import InputSpec


@dataclass(frozen=True)
class Letterbox:
    """How a frame was mapped into the input: input = frame * scale + (pad_x, pad_y)."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    frame_width: int
    frame_height: int

    def to_frame(self, coords: np.ndarray, width: int = 4) -> np.ndarray:
        """Map rows of (x, y) pairs from input pixels back to frame pixels, clipped to the frame:
        [x1, y1, x2, y2] boxes (``width`` 4) or points such as landmarks [x1, y1, ..., xk, yk]."""
        out = np.array(coords, dtype=np.float32, copy=True).reshape(-1, width)
        out[:, 0::2] = ((out[:, 0::2] - self.pad_x) / self.scale_x).clip(0, self.frame_width)
        out[:, 1::2] = ((out[:, 1::2] - self.pad_y) / self.scale_y).clip(0, self.frame_height)
        return out


def _resize(frame: np.ndarray, spec: InputSpec) -> Tuple[np.ndarray, Letterbox]:
    import cv2

    height, width = frame.shape[:2]
    if spec.resize == "stretch":
        sx, sy = spec.width / width, spec.height / height
        resized = cv2.resize(frame, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
        return resized, Letterbox(sx, sy, 0.0, 0.0, width, height)
    scale = min(spec.width / width, spec.height / height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    pad_x, pad_y = (
        (0, 0) if spec.letterbox_align == "top_left" else ((spec.width - new_w) // 2, (spec.height - new_h) // 2)
    )
    canvas = np.full((spec.height, spec.width) + frame.shape[2:], spec.pad_value, dtype=frame.dtype)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    return canvas, Letterbox(scale, scale, float(pad_x), float(pad_y), width, height)


def _convert_color(frame: np.ndarray, color: str) -> np.ndarray:
    """Frames arrive as OpenCV gives them: BGR, or single-channel grey."""
    import cv2

    grey_in = frame.ndim == 2 or frame.shape[2] == 1
    if color == "GRAY":
        return frame.reshape(frame.shape[:2]) if grey_in else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if grey_in:
        return cv2.cvtColor(
            frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2BGR if color == "BGR" else cv2.COLOR_GRAY2RGB
        )
    return frame if color == "BGR" else cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _normalise(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """``(pixels * scale - mean) / std`` per channel, in float32, in that order.

    OpenCV's arithmetic with a per-channel scalar does the same float32 multiply, subtract and
    divide per element as numpy's broadcasting (tests/model/test_preprocess.py compares them bit for
    bit), several times faster on camera-sized and small inputs. Frames come from OpenCV, so they
    have at most 4 channels, what one OpenCV scalar covers.
    """
    import cv2

    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    scale, mean, std = _scalars(spec, channels)
    cv2.multiply(pixels, scale, dst=pixels)
    cv2.subtract(pixels, mean, dst=pixels)
    cv2.divide(pixels, std, dst=pixels)
    return pixels


@functools.lru_cache(maxsize=64)
def _scalars(spec: InputSpec, channels: int) -> Tuple[Any, Any, Any]:
    """OpenCV scalars (4 values: the channels, then neutral padding) of scale, mean and std as float32.

    Typed Any: OpenCV takes a 4-tuple as a Scalar, which its type stubs only declare for some functions."""

    def four(values: Sequence[float], pad: float) -> Tuple[float, ...]:
        each = np.broadcast_to(np.asarray(values, dtype=np.float32), (channels,))
        return tuple(float(v) for v in each) + (pad,) * (4 - channels)

    return four([spec.scale] * channels, 0.0), four(spec.mean, 0.0), four(spec.std, 1.0)


def preprocess(frame: np.ndarray, spec: InputSpec) -> Tuple[np.ndarray, Letterbox]:
    """One frame (H x W x 3 BGR or H x W grey, uint8) -> one sample of the input tensor (no batch axis)."""
    if frame.ndim not in (2, 3) or frame.size == 0:
        raise ValueError(f"frame with shape {frame.shape} is not an image")
    import cv2

    resized, box = _resize(frame, spec)
    pixels = _normalise(_convert_color(resized, spec.color).astype(np.float32), spec)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if spec.transpose_hw:
        pixels = cv2.transpose(pixels).reshape(pixels.shape[1], pixels.shape[0], pixels.shape[2])
    if spec.layout == "NCHW":
        pixels = pixels.transpose(2, 0, 1)
    return np.ascontiguousarray(pixels, dtype=np.dtype(spec.dtype)), box


def make_batch(frames: Sequence[np.ndarray], spec: InputSpec) -> Tuple[np.ndarray, List[Letterbox]]:
    """Preprocess frames into one batch of ``spec.batch``; a short batch is padded with zeros."""
    if not frames:
        raise ValueError("make_batch needs at least one frame")
    if len(frames) > spec.batch:
        raise ValueError(f"{len(frames)} frames for a batch of {spec.batch}")
    samples, boxes = zip(*(preprocess(f, spec) for f in frames))
    return stack_batch(samples, spec), list(boxes)


def stack_batch(samples: Sequence[np.ndarray], spec: InputSpec) -> np.ndarray:
    """Preprocessed samples as one batch of ``spec.batch``: one copy when it is full, else zero-padded."""
    if len(samples) == spec.batch:
        return np.stack(samples)
    batch = np.zeros(spec.tensor_shape(), dtype=np.dtype(spec.dtype))
    batch[: len(samples)] = np.stack(samples)
    return batch
