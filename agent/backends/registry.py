"""Backends by name, imported lazily so a machine without TensorRT runs everything else."""

from __future__ import annotations

import importlib.util

from agent.backends.base import Backend
from agent.util.errors import InputError

NAMES = ("onnxruntime", "tensorrt")


def tensorrt_available() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


def resolve_name(name: str) -> str:
    """'auto' -> 'tensorrt' where TensorRT is installed, else 'onnxruntime'."""
    if name == "auto":
        return "tensorrt" if tensorrt_available() else "onnxruntime"
    if name not in NAMES:
        raise InputError(f"backend.name: expected one of auto, {', '.join(NAMES)}, got {name!r}")
    return name


def get_backend(name: str) -> Backend:
    name = resolve_name(name)
    if name == "onnxruntime":
        from agent.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend()
    from agent.backends.tensorrt.backend import TensorRTBackend  # raises MissingDependency with install advice

    return TensorRTBackend()
