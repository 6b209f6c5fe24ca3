"""model.detection.decoder: a user's own decoder given as ``package.module:function``.

Contract (docs/detection.md): ``function(outputs, letterboxes, config)`` where ``outputs`` maps
each output name to the raw array of the whole batch, ``letterboxes`` holds one
``agent.model.preprocess.Letterbox`` per real image of the batch (``to_frame`` maps input pixels to
frame pixels) and ``config`` is the model section (ModelConfig). It returns one mapping per image
in ``letterboxes``: ``boxes`` [K, 4] x1, y1, x2, y2 in frame pixels, ``scores`` [K], ``classes``
[K] indices into model.labels, and optionally more [K, ...] arrays kept as extra fields.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable, Dict, List, Mapping

import numpy as np

from agent.util.errors import InputError

KEY = "model.detection.decoder"
REQUIRED = ("boxes", "scores", "classes")


def load_decoder(spec: str) -> Callable[..., Any]:
    """Import ``package.module:function`` and check that it takes (outputs, letterboxes, config)."""
    module_name, _, func_name = spec.partition(":")
    if not module_name or not func_name:
        raise InputError(f"{KEY}: expected package.module:function, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the module raises while importing
        raise InputError(f"{KEY}: cannot import {module_name!r} ({type(exc).__name__}: {exc})") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise InputError(f"{KEY}: module {module_name!r} has no function {func_name!r}")
    try:
        inspect.signature(func).bind(None, None, None)
    except TypeError:
        raise InputError(
            f"{KEY}: {spec} has the signature {inspect.signature(func)}; expected (outputs, letterboxes, config)"
        ) from None
    except ValueError:  # a builtin without a signature: let the call tell
        pass
    return func


def check_result(spec: str, result: Any, count: int) -> List[Dict[str, np.ndarray]]:
    """The decoder's answer as arrays, refused with a sentence naming the key when it is malformed."""
    if not isinstance(result, (list, tuple)) or len(result) < count:
        raise ValueError(f"{KEY}: {spec} must return a list of {count} per-image results, got {type(result).__name__}")
    images = []
    for i, item in enumerate(result[:count]):
        if not isinstance(item, Mapping) or any(k not in item for k in REQUIRED):
            raise ValueError(f"{KEY}: {spec} result {i} must be a mapping with {', '.join(REQUIRED)}")
        arrays = {k: np.asarray(v) for k, v in item.items()}
        boxes = arrays["boxes"].reshape(-1, 4).astype(np.float32)
        rows = len(boxes)
        bad = [k for k, v in arrays.items() if k != "boxes" and (v.ndim == 0 or len(v) != rows)]
        if bad:
            raise ValueError(f"{KEY}: {spec} result {i}: {bad[0]} does not have one row per box ({rows})")
        arrays["boxes"] = boxes
        images.append(arrays)
    return images
