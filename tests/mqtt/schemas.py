"""docs/schemas/*.json loaded into a jsonschema registry (so their relative $refs resolve)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def _load() -> Dict[str, Dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(SCHEMAS.glob("*.json"))}


DOCS = _load()
REGISTRY = Registry().with_resources((doc["$id"], Resource.from_contents(doc)) for doc in DOCS.values())


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(DOCS[name], registry=REGISTRY, format_checker=FormatChecker())


def kind_of(payload: Dict[str, Any]) -> str:
    """'edge-agent/benchmark/1' -> 'benchmark'."""
    return str(payload["schema"]).split("/")[1]
