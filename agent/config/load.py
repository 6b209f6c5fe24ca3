"""Loading the configuration: YAML with ``--set`` overrides, validation that reports every error
with its key path and line, paths resolved against the file, and secrets read from the files the
configuration names.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import socket
import stat
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from agent.config.keys import field_at, schema_tree
from agent.util.errors import ConfigError
from agent.util.schema import Node, show, validate

log = logging.getLogger(__name__)

PACKAGE_PREFIX = "pkg:"
PATH_KEYS = (
    "model.path",
    "model.labels_file",
    "source.uri",
    "accuracy.spot_labels",
    "mqtt.password_file",
    "mqtt.tls.ca_file",
    "mqtt.tls.cert_file",
    "mqtt.tls.key_file",
    "commands.key_file",
    "paths.state_dir",
    "paths.engine_cache",
    "paths.calibration_dir",
    "telemetry.sysfs_root",
)
SECRET_KEYS = ("mqtt.password_file", "commands.key_file", "mqtt.tls.key_file")
# Keys whose null loading replaces (the hostname, folders under paths.state_dir): never null once loaded.
DERIVED_KEYS = ("device.id", "paths.engine_cache", "paths.calibration_dir")
_TOPIC_UNSAFE = set("/+#\x00")
_SOURCE_ID = re.compile(r"[A-Za-z0-9_-]+")


def parse_override(text: str) -> Tuple[str, Any]:
    """'mqtt.port=1884' -> ('mqtt.port', 1884). Values are read as YAML scalars or lists."""
    if "=" not in text:
        raise ConfigError([f"--set {text}: expected KEY.PATH=VALUE"], "--set")
    key, raw = text.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    field = field_at(key)
    if field is not None and field.kind == "str" and value is not None and not isinstance(value, str):
        value = raw  # 'device.id=42' means the string "42"
    return key, value


def apply_overrides(data: Dict[str, Any], overrides: Sequence[str]) -> List[str]:
    """Apply KEY.PATH=VALUE overrides to raw config data; return the key paths set."""
    keys = []
    for text in overrides:
        key, value = parse_override(text)
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
        keys.append(key)
    return keys


def _line_numbers(text: str) -> Dict[str, int]:
    """Map each key path in a YAML document to its 1-based line."""
    lines: Dict[str, int] = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return lines

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                path = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
                lines[path] = key_node.start_mark.line + 1
                walk(value_node, path)

    walk(root, "")
    return lines


def _with_line(error: str, lines: Dict[str, int], source: str, overridden: Sequence[str]) -> str:
    path = error.split(":", 1)[0].split("[", 1)[0]
    if any(path == key or path.startswith(key + ".") or key.startswith(path + ".") for key in overridden):
        return f"--set {error}"
    while path:
        if path in lines:
            return f"{source}:{lines[path]}: {error}"
        path = path.rpartition(".")[0]
    return error


def _line_of(error: str) -> int:
    """Sort key: the line number an error carries, errors without one last."""
    match = re.match(r"[^:]*:(\d+): ", error)
    return int(match.group(1)) if match else 1 << 30


def _resolve_path(value: Optional[str], base: Path) -> Optional[str]:
    if value is None or value.startswith(PACKAGE_PREFIX) or "://" in value:
        return value
    if value.isdigit():  # a V4L2 device index
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


# The shortest interval each schedule accepts (0 still disables). Benchmarks and checks pause live
# inference while they run; shorter intervals starve it (issue 15, case 6).
INTERVAL_MINIMUM_S = {"telemetry": 0.5, "labels": 0.5, "benchmark": 10.0, "check": 2.0}
INTERVAL_KEYS = {
    "telemetry": "schedules.telemetry_s",
    "benchmark": "schedules.benchmark_s",
    "check": "schedules.check_s",
    "labels": "accuracy.label_drop_interval_s",
}


def interval_error(name: str, seconds: float) -> Optional[str]:
    """Why ``seconds`` is no interval for schedule ``name`` (0 disables it), or None when it is one."""
    least = INTERVAL_MINIMUM_S.get(name, 0.0)
    if seconds < 0 or 0 < seconds < least:
        return f"{INTERVAL_KEYS.get(name, name)}: 0 (off) or at least {least:g} s, got {show(seconds)}"
    return None


def _semantic_errors(cfg: Node) -> List[str]:
    errors = [e for e in (interval_error(name, float(cfg.get_path(key))) for name, key in INTERVAL_KEYS.items()) if e]
    for key in ("device.id", "mqtt.prefix"):
        value = cfg.get_path(key)
        if value is not None and (set(value) & _TOPIC_UNSAFE or not value.strip()):
            errors.append(f"{key}: must not be empty or contain / + # (it is an MQTT topic segment), got {show(value)}")
    errors += _source_errors(cfg)
    if cfg.mqtt.reconnect_min_s > cfg.mqtt.reconnect_max_s:
        errors.append(
            f"mqtt.reconnect_min_s: must not exceed mqtt.reconnect_max_s, got {show(cfg.mqtt.reconnect_min_s)}"
        )
    if cfg.accuracy.warn_drop_pp > cfg.accuracy.alert_drop_pp:
        errors.append(
            f"accuracy.warn_drop_pp: must not exceed accuracy.alert_drop_pp, got {show(cfg.accuracy.warn_drop_pp)}"
        )
    for key in ("mean", "std"):
        values = cfg.model.input[key]
        if len(values) not in (1, 3):
            errors.append(f"model.input.{key}: expected 1 or 3 values, got {show(values)}")
    tls = cfg.mqtt.tls
    if (tls.cert_file is None) != (tls.key_file is None):
        errors.append("mqtt.tls.cert_file: a client certificate needs both cert_file and key_file")
    return errors


def _source_items(cfg: Node) -> List[Tuple[str, Node]]:
    """Each configured source with its key path: ``sources[i]``, or ``source`` when that is the only one."""
    return [(f"sources[{i}]", item) for i, item in enumerate(cfg.sources)] or [("source", cfg.source)]


def _source_errors(cfg: Node) -> List[str]:
    errors, seen = [], set()
    for where, item in _source_items(cfg):
        lo, hi = item.reopen_backoff_s
        if lo > hi:
            errors.append(f"{where}.reopen_backoff_s: first wait must not exceed the longest, got {show([lo, hi])}")
        if not _SOURCE_ID.fullmatch(item.id):
            errors.append(f"{where}.id: letters, digits, _ and - only (an MQTT topic segment), got {show(item.id)}")
        elif item.id in seen:
            errors.append(f"{where}.id: {show(item.id)} is the id of an earlier source; ids must be unique")
        seen.add(item.id)
    return errors


def fold_sources(data: Dict[str, Any], overridden: Sequence[str]) -> List[str]:
    """``source`` and ``sources`` both given is an error, unless ``source`` holds only ``--set source.KEY``
    overrides (e.g. run --once's source.loop=false): those then apply to every item of ``sources``."""
    if not isinstance(data.get("sources"), list) or not data["sources"] or "source" not in data:
        return []
    single = data["source"]
    from_overrides = isinstance(single, dict) and all(f"source.{key}" in overridden for key in single)
    if not from_overrides:
        return ["source: give either source (one) or sources (a list), not both"]
    for item in data["sources"]:
        if isinstance(item, dict):
            item.update(copy.deepcopy(single))
    del data["source"]
    return []


def _normalise_sources(cfg: Node) -> None:
    """A lone ``source`` becomes the one-item ``sources``; with ``sources``, ``source`` is its first item."""
    if cfg.sources:
        cfg["source"] = copy.deepcopy(cfg.sources[0])
    else:
        cfg["sources"] = [copy.deepcopy(cfg.source)]


def _secret_file_errors(cfg: Node) -> List[str]:
    errors = []
    for key in SECRET_KEYS:
        path = cfg.get_path(key)
        if path is None:
            continue
        if not os.path.isfile(path):
            errors.append(f"{key}: file not found: {path}")
        elif not os.access(path, os.R_OK):
            errors.append(f"{key}: file not readable: {path}")
    return errors


def validate_data(
    data: Any,
    source: str = "configuration",
    base: Optional[Path] = None,
    text: str = "",
    overridden: Sequence[str] = (),
) -> Node:
    """Validate raw config data; raise ConfigError listing every problem at once."""
    data = copy.deepcopy(data)
    folded = fold_sources(data, overridden) if isinstance(data, dict) else []
    cfg, errors = validate(schema_tree(), data)
    errors = folded + errors
    if not errors:
        errors = _semantic_errors(cfg)
    if errors:
        lines = _line_numbers(text) if text else {}
        located = [_with_line(e, lines, source, overridden) for e in errors]
        raise ConfigError(sorted(located, key=_line_of), source)
    base = base or Path.cwd()
    for key in PATH_KEYS:
        section, _, leaf = key.rpartition(".")
        node = cfg.get_path(section)
        node[leaf] = _resolve_path(node[leaf], base)
    for item in cfg.sources:
        item["uri"] = _resolve_path(item.uri, base)
    _normalise_sources(cfg)
    paths = cfg.paths
    paths["engine_cache"] = paths.engine_cache or str(Path(paths.state_dir) / "engines")
    paths["calibration_dir"] = paths.calibration_dir or str(Path(paths.state_dir) / "calibration")
    cfg.device["id"] = cfg.device.id or socket.gethostname().split(".")[0] or "edge-agent"
    secret_errors = _secret_file_errors(cfg)
    if secret_errors:
        raise ConfigError(secret_errors, source)
    return cfg


def decode_utf8(raw: bytes, source: str) -> str:
    """The file's text; a byte that is not UTF-8 is a ConfigError naming its line and column."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line, column = before.count(b"\n") + 1, exc.start - (before.rfind(b"\n") + 1) + 1
        byte = raw[exc.start : exc.start + 1].hex()
        raise ConfigError(
            [f"{source}:{line}: not UTF-8: byte 0x{byte} at column {column} (save the file as UTF-8)"], source
        ) from None


def load_config(path: Optional[str] = None, overrides: Sequence[str] = ()) -> Node:
    """Load a YAML config file (or the built-in defaults when ``path`` is None) plus overrides."""
    if path is None:
        data: Any = {}
        text, source, base = "", "defaults", Path.cwd()
    else:
        file = Path(path)
        source = str(path)
        try:
            text = decode_utf8(file.read_bytes(), source)
        except OSError as exc:
            raise ConfigError([f"cannot read the file: {exc.strerror}"], source) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{source}:{mark.line + 1}" if mark else source
            raise ConfigError([f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"], source) from None
        base = file.resolve().parent
    if data is None:
        data = {}
    overridden = apply_overrides(data, overrides) if isinstance(data, dict) else []
    return validate_data(data, source, base, text, overridden)


def read_secret(key: str, path: Optional[str]) -> Optional[str]:
    """The content of the secret file ``path`` that the key ``key`` names (stripped), or None when unset.

    The value is never logged. A file that others can read is refused loudly in the log.
    """
    if path is None:
        return None
    try:
        mode = os.stat(path).st_mode
        with open(path, "r", encoding="utf-8") as handle:
            secret = handle.read().strip()
    except OSError as exc:
        raise ConfigError([f"{key}: cannot read {path}: {exc.strerror}"]) from None
    if mode & (stat.S_IRWXO):
        log.warning("%s: %s is readable by other users; chmod 600 it", key, path)
    if not secret:
        raise ConfigError([f"{key}: {path} is empty"])
    return secret
