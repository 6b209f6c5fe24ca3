"""Dataclass records as JSON dicts: the one conversion every report record's ``to_json`` uses.

Fields go out in declaration order. A field left at None is absent from the JSON (an optional
part the producer did not add) unless its metadata is ``KEEP_NONE`` (present as null); a field
with ``FLATTEN`` metadata is a free-form dict whose keys join the record's own. Nested records
(anything with ``to_json``), alone or in a list, are converted too.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Dict

KEEP_NONE = {"json": "keep_none"}
FLATTEN = {"json": "flatten"}


def _plain(value: Any) -> Any:
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def record_json(record: Any) -> Dict[str, Any]:
    """``record`` (a dataclass instance) as the dict its JSON form is."""
    out: Dict[str, Any] = {}
    for spec in fields(record):
        value = getattr(record, spec.name)
        how = spec.metadata.get("json")
        if how == "flatten":
            out.update(value)
        elif value is not None or how == "keep_none":
            out[spec.name] = _plain(value)
    return out
