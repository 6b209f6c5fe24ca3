"""``sources:`` as a list of sections: each validated with its key path, ids unique and topic-safe,
``source:`` still a one-item list, both at once refused (unless only --set overrides made ``source``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config.load import load_config
from agent.config.sections import Config
from agent.util.errors import ConfigError
from agent.util.schema import Field, validate


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


def errors_of(path: str) -> list:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.errors


def test_a_list_of_sections_field_checks_each_item_with_its_index():
    field = Field("list", [], sections={"a": Field("int", 1, minimum=0), "b": Field("str", "x")})
    value, errors = validate({"items": field}, {"items": [{"a": 2}, {"a": -1, "c": 0}, 5]})
    assert value["items"] == [{"a": 2, "b": "x"}, {"a": 1, "b": "x"}]
    assert sorted(errors) == [
        "items[1].a: expected an integer >= 0, got -1",
        "items[1].c: unknown key",
        "items[2]: expected a mapping, got 5",
    ]
    assert field.expectation() == "a list of items, each a mapping"


def test_sources_are_validated_with_their_key_paths(tmp_path):
    path = write(
        tmp_path,
        "sources:\n  - {id: a, kind: file, uri: a.mp4}\n  - {id: b, kind: tape, uri: 3}\n  - {id: c, fps: 0}\n"
        "  - {id: d, kind: file, uri: d.mp4, decode_threads: 0}\n",
    )
    errors = errors_of(path)
    assert any("sources[3].decode_threads: expected an integer >= 1" in e for e in errors), errors
    assert any("sources[1].kind: expected one of v4l2" in e for e in errors), errors
    assert any("sources[1].uri: expected a string, got 3" in e for e in errors), errors
    assert any("sources[2].fps: expected a number >= 0.1" in e for e in errors), errors
    assert all(e.startswith(f"{path}:1: ") for e in errors)  # the line of sources:


def test_source_ids_must_be_unique_and_topic_safe(tmp_path):
    path = write(
        tmp_path,
        "sources:\n  - {id: cam-1, uri: '0'}\n  - {id: cam-1, uri: '1'}\n  - {id: 'a/b', uri: '2'}\n"
        "  - {id: ok_2, uri: '3', reopen_backoff_s: [5, 1]}\n",
    )
    errors = errors_of(path)
    assert any('sources[1].id: "cam-1" is the id of an earlier source' in e for e in errors), errors
    assert any("sources[2].id: letters, digits, _ and - only" in e and '"a/b"' in e for e in errors), errors
    assert any("sources[3].reopen_backoff_s: first wait must not exceed the longest" in e for e in errors), errors


def test_a_lone_source_is_a_one_item_sources_list(tmp_path):
    cfg = load_config(write(tmp_path, "source: {kind: images, uri: frames, fps: 5}\n"))
    assert [s.id for s in cfg.sources] == ["default"]
    assert cfg.sources[0] == cfg.source and cfg.sources[0].uri == str(tmp_path / "frames")
    named = load_config(write(tmp_path, "source: {id: door, kind: images, uri: frames}\n"))
    assert Config.from_node(named).sources[0].id == "door"


def test_sources_fill_each_item_and_source_is_the_first(tmp_path):
    cfg = load_config(
        write(tmp_path, "sources:\n  - {id: a, kind: file, uri: a.mp4}\n  - {id: b, kind: images, uri: b}\n")
    )
    config = Config.from_node(cfg)
    assert [(s.id, s.kind, s.uri) for s in config.sources] == [
        ("a", "file", str(tmp_path / "a.mp4")),
        ("b", "images", str(tmp_path / "b")),
    ]
    assert config.sources[1].read_timeout_s == 5.0 and config.source == config.sources[0]


def test_source_and_sources_together_are_refused(tmp_path):
    path = write(tmp_path, "source: {kind: file}\nsources:\n  - {id: a, kind: file, uri: a.mp4}\n")
    assert errors_of(path) == [f"{path}:1: source: give either source (one) or sources (a list), not both"]


def test_source_overrides_apply_to_every_listed_source(tmp_path):
    """run --once sets source.loop=false: with sources that means each of them."""
    path = write(tmp_path, "sources:\n  - {id: a, kind: file, uri: a.mp4}\n  - {id: b, kind: images, uri: b}\n")
    cfg = load_config(path, ["source.loop=false", "source.fps=7"])
    assert [(s.loop, s.fps) for s in cfg.sources] == [(False, 7.0), (False, 7.0)]
