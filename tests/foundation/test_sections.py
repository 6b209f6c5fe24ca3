"""The typed views (agent.config.sections) match the schema key for key, and hold the loaded values."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, get_type_hints

import pytest

from agent.config.keys import schema_tree
from agent.config.load import DERIVED_KEYS, load_config
from agent.config.sections import Config, Section, SourceConfig
from agent.util.schema import Field, defaults, iter_fields, section_paths

KINDS = {"int": int, "float": float, "bool": bool, "str": str}


def expected_type(field: Field) -> Any:
    """The Python type a view field of this schema field has (before nullability)."""
    if field.kind == "list" and field.sections is not None:
        return List[SourceConfig]  # the one list of sections: sources
    if field.kind == "list":
        return List[expected_type(field.item) if field.item else Any]  # type: ignore[misc]
    if field.kind == "map":
        return Dict[str, expected_type(field.item) if field.item else Any]  # type: ignore[misc]
    return KINDS[field.kind]


def view_leaves(cls: type, prefix: str = "") -> Dict[str, Any]:
    """Every leaf field of a view class tree by dotted path, with its type."""
    found: Dict[str, Any] = {}
    for name, hint in get_type_hints(cls).items():
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(hint, type) and issubclass(hint, Section):
            found.update(view_leaves(hint, path))
        else:
            found[path] = hint
    return found


def view_sections(cls: type, prefix: str = "") -> Dict[str, List[str]]:
    """Every view class by dotted path, with its field names in declaration order."""
    found = {prefix: [f.name for f in dataclasses.fields(cls)]}
    for name, hint in get_type_hints(cls).items():
        if isinstance(hint, type) and issubclass(hint, Section):
            found.update(view_sections(hint, f"{prefix}.{name}" if prefix else name))
    return found


def test_every_schema_key_has_a_view_field_of_its_type_and_no_other_field_exists() -> None:
    leaves = view_leaves(Config)
    fields = dict(iter_fields(schema_tree()))
    assert sorted(leaves) == sorted(fields)
    for path, field in fields.items():
        wanted = expected_type(field)
        if field.nullable and path not in DERIVED_KEYS:
            wanted = Optional[wanted]
        assert leaves[path] == wanted, f"{path}: view type {leaves[path]}, schema wants {wanted}"


def test_view_sections_are_the_schema_sections_in_its_order() -> None:
    schema = {path: list(section) for path, section in section_paths(schema_tree()).items()}
    assert view_sections(Config) == schema


def test_view_holds_the_loaded_values(tmp_path: Path) -> None:
    config_file = tmp_path / "c.yaml"
    config_file.write_text(
        "model:\n  classification:\n    class_thresholds: {face: 0.7}\n  input: {size: [48, 48]}\n"
        "backend: {onnxruntime: {intra_op_threads: 2}}\nsource: {kind: images, uri: frames, fps: 5}\n"
    )
    node = load_config(str(config_file), ["mqtt.port=1884"])
    config = Config.from_node(node)
    assert dataclasses.asdict(config) == node
    assert json.dumps(dataclasses.asdict(config)) == json.dumps(node)  # same keys, same order, same values
    assert config.mqtt.port == 1884 and config.source.fps == 5.0 and config.source.uri == str(tmp_path / "frames")
    assert config.model.input.size == [48, 48] and config.model.classification.class_thresholds == {"face": 0.7}
    assert config.backend.options("onnxruntime") == dict(node.backend.onnxruntime)
    assert config.paths.engine_cache == node.paths.engine_cache and config.device.id == node.device.id


def test_views_are_frozen_copies() -> None:
    node = load_config(None)
    source = SourceConfig.from_node(node.source)
    with pytest.raises(dataclasses.FrozenInstanceError):
        source.uri = "/dev/video1"  # type: ignore[misc]
    assert source.reopen_backoff_s == node.source.reopen_backoff_s
    assert source.reopen_backoff_s is not node.source.reopen_backoff_s


def test_a_view_of_unloaded_defaults_is_refused_where_loading_fills_a_null() -> None:
    with pytest.raises(ValueError, match="id: null"):
        Config.from_node(defaults(schema_tree()))
