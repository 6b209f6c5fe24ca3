"""Configuration: defaults, validation errors with key path, line and value, overrides, secrets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.config.keys import SCHEMA
from agent.config.load import load_config, read_secret
from agent.config.render import reference_markdown, render_yaml
from agent.util.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


def errors_of(path: str, overrides=()) -> list:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return info.value.errors


def test_shipped_config_is_the_generated_default_and_valid() -> None:
    assert (ROOT / "config.yaml").read_text() == render_yaml()
    assert (ROOT / "docs" / "configuration.md").read_text() == reference_markdown()
    cfg = load_config(str(ROOT / "config.yaml"))
    assert cfg.mqtt.port == 1883 and cfg.paths.engine_cache == "/var/lib/edge-agent/engines"


def test_every_key_in_config_yaml_has_a_comment_above_it() -> None:
    lines = (ROOT / "config.yaml").read_text().splitlines()
    for number, line in enumerate(lines):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            assert lines[number - 1].strip().startswith("#"), f"config.yaml line {number + 1} has no comment: {line}"


def test_fixed_key_names_exist() -> None:
    cfg = load_config(None)
    for key in (
        "device.id",
        "model.path",
        "paths.state_dir",
        "paths.engine_cache",
        "paths.calibration_dir",
        "accuracy.spot_labels",
        "mqtt.host",
        "mqtt.port",
        "mqtt.prefix",
        "commands.key_file",
        "schedules.telemetry_s",
        "schedules.benchmark_s",
        "schedules.check_s",
    ):
        cfg.get_path(key)  # raises KeyError when missing


def test_all_errors_at_once_with_path_line_and_value(tmp_path: Path) -> None:
    path = write(
        tmp_path, "mqtt:\n  port: abc\n  prot: 1\nprecision: int4\nbackend:\n  onnxruntime:\n    intra_op_threads: -1\n"
    )
    errors = errors_of(path)
    assert errors == [
        f'{path}:2: mqtt.port: expected an integer 1-65535, got "abc"',
        f'{path}:3: mqtt.prot: unknown key (did you mean "port"?)',
        f'{path}:4: precision: expected one of fp32, fp16, int8, best, got "int4"',
        f"{path}:7: backend.onnxruntime.intra_op_threads: expected an integer >= 0, got -1",
    ]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("mqtt:\n  enabled: 1\n", "mqtt.enabled: expected true or false, got 1"),
        ("mqtt:\n  port: true\n", "mqtt.port: expected an integer 1-65535, got true"),
        ("mqtt:\n  port: 70000\n", "mqtt.port: expected an integer 1-65535, got 70000"),
        ("mqtt: 5\n", "mqtt: expected a mapping, got 5"),
        (
            "model:\n  input:\n    size: [48]\n",
            "model.input.size: expected a list of 2 items, each an integer >= 1 or null, got [48]",
        ),
        ("model:\n  input:\n    size: [48, 0]\n", "model.input.size[1]: expected an integer >= 1, got 0"),
        (
            "device:\n  id: a/b\n",
            'device.id: must not be empty or contain / + # (it is an MQTT topic segment), got "a/b"',
        ),
        ("[1, 2]\n", "(top level): expected a mapping, got [1, 2]"),
        ("model:\n  input:\n    mean: [1, 2]\n", "model.input.mean: expected 1 or 3 values, got [1.0, 2.0]"),
    ],
)
def test_type_and_range_errors(tmp_path: Path, text: str, expected: str) -> None:
    assert any(e.endswith(expected) for e in errors_of(write(tmp_path, text))), errors_of(write(tmp_path, text))


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "mqtt:\n  port: [1\n")
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:") and "not valid YAML" in error


def test_overrides_are_validated_like_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "mqtt:\n  port: 1883\n")
    cfg = load_config(path, ["mqtt.port=1884", "device.id=42", "model.input.size=[64, 32]"])
    assert (cfg.mqtt.port, cfg.device.id, cfg.model.input.size) == (1884, "42", [64, 32])
    assert errors_of(path, ["mqtt.port=abc"]) == ['--set mqtt.port: expected an integer 1-65535, got "abc"']
    assert errors_of(path, ["mqtt.nope=1"]) == ["--set mqtt.nope: unknown key"]
    assert errors_of(path, ["garbage"]) == ["--set garbage: expected KEY.PATH=VALUE"]


def test_relative_paths_follow_the_config_file_and_derived_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "paths:\n  state_dir: state\nmodel:\n  path: m.onnx\nsource:\n  kind: v4l2\n  uri: '0'\n")
    cfg = load_config(path)
    assert cfg.paths.state_dir == str(tmp_path / "state")
    assert cfg.paths.engine_cache == str(tmp_path / "state" / "engines")
    assert cfg.paths.calibration_dir == str(tmp_path / "state" / "calibration")
    assert cfg.model.path == str(tmp_path / "m.onnx") and cfg.source.uri == "0"


def test_secrets_come_from_files_and_are_checked(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("s3cret\n")
    os.chmod(key, 0o600)
    cfg = load_config(write(tmp_path, f"commands:\n  key_file: {key}\n"))
    assert read_secret("commands.key_file", cfg.commands.key_file) == "s3cret"
    assert "s3cret" not in repr(cfg)
    assert errors_of(write(tmp_path, "mqtt:\n  password_file: missing.txt\n")) == [
        f"mqtt.password_file: file not found: {tmp_path / 'missing.txt'}"
    ]


def test_schema_sections_all_documented() -> None:
    def walk(section: dict, path: str) -> None:
        for key, spec in section.items():
            if isinstance(spec, dict):
                assert spec.get("__doc__"), f"section {path}{key} has no __doc__"
                walk(spec, f"{path}{key}.")
            elif key != "__doc__":
                assert spec.doc, f"{path}{key} has no doc"

    walk(SCHEMA, "")


def test_a_loaded_default_list_is_its_own_copy() -> None:
    first = load_config(None)
    first.source.reopen_backoff_s.append(99.0)
    assert 99.0 not in load_config(None).source.reopen_backoff_s
