"""Whether the pipeline can feed a model: one image tensor per inference, nothing else.

The pipeline (agent.model.pipeline) feeds exactly the configured image input; a model that needs
a second input (a scale, a mask, a state) fails at its first inference, and a benchmark of it
times nothing. ``config check``, ``run`` and ``bench`` refuse such a model up front.
"""

from __future__ import annotations

from agent.model.pipeline import PreparedModel
from agent.util.errors import InputError


def require_feedable(model: PreparedModel) -> None:
    """InputError naming the inputs the pipeline cannot feed, and where to change them."""
    others = [t.name for t in model.info.inputs if t.name != model.spec.name]
    if others:
        names = [t.name for t in model.info.inputs]
        raise InputError(
            f"model.path: {model.path} has {len(names)} inputs {names}; the pipeline feeds only the image "
            f"input {model.spec.name!r} and cannot feed {others} (export the model with one image input, "
            "the others folded in as constants)"
        )
