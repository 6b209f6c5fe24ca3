"""config.yaml and docs/configuration.md, generated from the schema in agent.config.keys:
``python -m agent.config.render --yaml`` (the default) or ``--markdown``.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List

import yaml

from agent.config.keys import SCHEMA, schema_tree
from agent.util.schema import Field, iter_fields

ROOT_DOC = (
    "edge-agent configuration. Every key is optional: a missing key takes the value shown here.\n"
    "Relative paths are taken from this file's folder; 'pkg:PACKAGE/FILE' names a file shipped\n"
    "inside an installed Python package. Check a file with: edge-agent config check -c FILE"
)


def render_yaml(section: Dict[str, Any] = SCHEMA, indent: int = 0) -> str:
    """The documented default configuration (what config.yaml holds), generated from SCHEMA."""
    pad = "  " * indent
    out: List[str] = []
    if indent == 0:
        out += [f"# {line}" if line else "#" for line in ROOT_DOC.splitlines()]
    for key, spec in section.items():
        if key == "__doc__":
            continue
        if isinstance(spec, Field):
            out.append(f"{pad}# {spec.doc}")
            out.append(f"{pad}{key}: {_yaml_value(spec.default)}")
        else:
            out.append("")
            out.append(f"{pad}# {spec.get('__doc__', '')}".rstrip())
            out.append(f"{pad}{key}:")
            out.append(render_yaml(spec, indent + 1).strip("\n"))
    return "\n".join(out) + "\n"


def _yaml_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict) and not value:
        return "{}"
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_./-]+", value) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value)


def reference_markdown() -> str:
    """docs/configuration.md: every key with its type, default and meaning."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for path, field in iter_fields(schema_tree()):
        rows.append(f"| `{path}` | {field.expectation()} | `{_yaml_value(field.default)}` | {field.doc} |")
    return (
        "# Configuration reference\n\n"
        "Generated from `agent/config/keys.py` (`python -m agent.config.render --markdown`); `config.yaml`\n"
        "is generated from the same schema (`python -m agent.config.render --yaml`). Unknown keys are refused.\n\n"
        + "\n".join(rows)
        + "\n"
    )


if __name__ == "__main__":
    import sys

    sys.stdout.write(reference_markdown() if "--markdown" in sys.argv else render_yaml())
