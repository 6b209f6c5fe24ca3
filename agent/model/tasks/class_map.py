"""model.class_map: the model's class names onto the spot-label classes (many to one, null drops
a class). The decoder applies it, so everything downstream sees only the mapped classes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np

from agent.util.errors import InputError

IGNORED = -1


@dataclass(frozen=True)
class ClassMap:
    """``index[i]``: the mapped class of model class ``i`` (an index into ``labels``), or IGNORED."""

    labels: List[str]
    index: np.ndarray

    def apply(self, classes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(mapped classes, mask of the detections kept) for model class indices ``classes``."""
        mapped = self.index[np.asarray(classes, dtype=np.int64)]
        keep = mapped != IGNORED
        return mapped[keep], keep


def build_class_map(model_labels: Sequence[str], mapping: Mapping[str, Optional[str]]) -> ClassMap:
    """The map from the model's labels; a name the model does not have is refused with its key path.
    Mapped classes are listed in the order their first model class comes; unlisted ones keep their name."""
    unknown = [name for name in mapping if name not in model_labels]
    if unknown:
        raise InputError(
            f"model.class_map.{unknown[0]}: the model has no class {unknown[0]!r}; its classes are {list(model_labels)}"
        )
    labels: List[str] = []
    index = np.full(len(model_labels), IGNORED, dtype=np.int64)
    for i, name in enumerate(model_labels):
        target = mapping.get(name, name)
        if target is None:
            continue
        if target not in labels:
            labels.append(target)
        index[i] = labels.index(target)
    if not labels:
        raise InputError("model.class_map: every model class is mapped to null; nothing would be detected")
    return ClassMap(labels, index)
