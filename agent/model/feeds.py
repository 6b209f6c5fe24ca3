"""Whether the pipeline can feed a model: one image tensor per inference, nothing else.

The pipeline (agent.model.pipeline) feeds exactly the configured image input; a model that needs
a second input (a scale, a mask, a state) fails at its first inference, and a benchmark of it
times nothing. ``prepare_model`` checks this, so every path that prepares the model (run, bench,
build, calibrate, config check, the daemon's rebuilds) refuses such a model the same way.
"""

from __future__ import annotations

from typing import Optional

from agent.model.info import ModelInfo
from agent.util.errors import InputError


def require_feedable(path: str, info: ModelInfo, configured: Optional[str]) -> None:
    """InputError naming the model, its inputs and those the pipeline cannot feed; the image input is
    ``configured`` (model.input.name) or else the first (a name the model lacks is left to
    ``resolve_input_spec`` to report)."""
    names = [t.name for t in info.inputs]
    if not names:
        raise InputError(f"model.path: {path} declares no input; the pipeline feeds one image input")
    image = configured or names[0]
    others = [name for name in names if name != image] if image in names else []
    if others:
        raise InputError(
            f"model.path: {path} has {len(names)} inputs {names}; the pipeline feeds only the image "
            f"input {image!r} and cannot feed {others} (export the model with one image input, "
            "the others folded in as constants)"
        )
