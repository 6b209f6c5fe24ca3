"""Spot-labeled sets on the device. This module reads the folder-per-class layout for
classification; each bad entry is reported with where it is, and the rest still count."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Sequence, Tuple

from .errors import InputError
from .sources import IMAGE_SUFFIXES


@dataclass
class LabeledSet:
    """Images with the index of their true class, plus what was skipped and why."""

    labels: List[str]
    items: List[Tuple[str, int]] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len(self.errors)


def load_folders(root: str, labels: Sequence[str]) -> LabeledSet:
    """``root/<class name>/<image>``; folders whose name is not a class are errors, not guesses."""
    base = Path(root)
    if not base.is_dir():
        raise InputError(f"accuracy.spot_labels: folder not found: {root}")
    result = LabeledSet(list(labels))
    index = {name: i for i, name in enumerate(labels)}
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        if folder.name not in index:
            result.errors.append(f"{folder}: folder {folder.name!r} is not a class ({', '.join(labels)}); {len(files)} file(s) skipped")
            continue
        for path in files:
            if path.suffix.lower() in IMAGE_SUFFIXES:
                result.items.append((str(path), index[folder.name]))
            else:
                result.errors.append(f"{path}: not an image ({path.suffix or 'no suffix'}); skipped")
    if not result.items:
        raise InputError(f"accuracy.spot_labels: no labeled images under {root} (expected {root}/<class>/<image>)")
    return result
