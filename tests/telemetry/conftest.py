from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SYSFS = Path(__file__).resolve().parent.parent / "fixtures" / "sysfs"
TEGRASTATS = Path(__file__).resolve().parent.parent / "fixtures" / "tegrastats"


@pytest.fixture
def sysfs_copy(tmp_path: Path):
    """A writable copy of one device tree, to change readings during a test."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(SYSFS / name, target)
        return target

    return copy
