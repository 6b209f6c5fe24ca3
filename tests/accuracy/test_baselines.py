"""Baseline storage: versions, hashes checked on load, pruning, lookup by engine."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from agent.accuracy import baselines
from agent.accuracy.plots import confusion_png
from agent.util.errors import MissingDependency


def record(engine_id: str) -> dict:
    return {
        "task": "classification",
        "classes": ["a", "b"],
        "engine": {"id": engine_id, "outcomes": {"x": ["a", True]}},
    }


def test_versions_hashes_and_lookup_by_engine(tmp_path: Path) -> None:
    state = str(tmp_path)
    assert baselines.latest(state) is None
    first = baselines.save(state, record("e1"))
    second = baselines.save(state, record("e2"))
    assert (first["version"], second["version"]) == (1, 2)
    assert first["sha256"] == baselines.content_hash(first) and first["format_version"] == baselines.FORMAT_VERSION
    assert baselines.latest(state)["engine"]["id"] == "e2"
    assert baselines.latest(state, engine_id="e1")["version"] == 1  # a rollback finds its engine's baseline
    assert baselines.latest(state, engine_id="e3") is None
    assert not [p for p in (tmp_path / "baselines").iterdir() if p.name.endswith(".tmp")]


def test_only_the_newest_are_kept(tmp_path: Path) -> None:
    for i in range(5):
        baselines.save(str(tmp_path), record(f"e{i}"), keep=2)
    assert baselines.versions(str(tmp_path)) == [4, 5]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda text: text[: len(text) // 2], "unreadable"),
        (lambda text: text.replace('"format_version": 1', '"format_version": 99'), "format 99, this version reads 1"),
        (lambda text: text.replace('"e1"', '"e9"'), "does not match its sha256"),
    ],
)
def test_damaged_files_are_refused_with_their_path(tmp_path: Path, damage, message: str) -> None:  # type: ignore[no-untyped-def]
    baselines.save(str(tmp_path), record("e1"))
    path = baselines.path_of(str(tmp_path), 1)
    path.write_text(damage(path.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(baselines.BaselineError, match=message) as info:
        baselines.latest(str(tmp_path))
    assert str(path) in str(info.value)


def test_confusion_png_and_the_message_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = confusion_png([[5, 1], [0, 4]], ["a", "b"], str(tmp_path / "cm.png"), "test")
    assert Path(out).read_bytes()[:4] == b"\x89PNG"
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import now fails as if not installed
    with pytest.raises(MissingDependency, match="needs matplotlib, which is not installed: pip install matplotlib"):
        confusion_png([[1]], ["a"], str(tmp_path / "no.png"))
    assert not (tmp_path / "no.png").exists()
