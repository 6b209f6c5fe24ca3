"""Shared fixtures: the real ONet face classifier and the LFW crops from installed packages."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, List, Tuple

import numpy as np
import pytest

from agent.config.load import load_config
from agent.config.sections import Config
from agent.demo import sample as demo
from agent.util.schema import Node


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared demo folder (read-only for tests): stream.avi, spot_labels/{face,non_face}, demo.yaml."""
    workdir = tmp_path_factory.mktemp("demo")
    demo.prepare(workdir)
    return workdir


@pytest.fixture
def demo_cfg(demo_dir: Path, tmp_path: Path) -> Node:
    """The demo configuration with a fresh state directory per test."""
    return load_config(str(demo_dir / "demo.yaml"), [f"paths.state_dir={tmp_path / 'state'}"])


@pytest.fixture
def demo_config(demo_cfg: Node) -> Config:
    """The typed view of demo_cfg (what the functions below the daemon and the CLI take)."""
    return Config.from_node(demo_cfg)


@pytest.fixture(scope="session")
def lfw() -> Tuple[np.ndarray, List[str]]:
    """200 grey uint8 25x25 crops; labels 'face' (first 100) and 'non_face'."""
    return demo.lfw_crops()


@pytest.fixture(scope="session")
def onet_path() -> str:
    from agent.util import packaged

    return packaged.resolve(demo.MODEL)


@pytest.fixture
def chdir_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    yield tmp_path
