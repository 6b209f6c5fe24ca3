"""A small declarative schema: typed fields, defaults, ranges and choices, with every error collected.

Used for the configuration file and for remote command arguments, so both refuse bad input the
same way: each error names the key path and the offending value.
"""

from __future__ import annotations

import copy
import difflib
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "list": "a list",
    "map": "a mapping",
}


def show(value: Any) -> str:
    """Render a value the way an error message quotes it."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


class Field:
    """One typed leaf of a schema."""

    def __init__(
        self,
        kind: str,
        default: Any = None,
        doc: str = "",
        *,
        nullable: bool = False,
        minimum: Optional[float] = None,
        maximum: Optional[float] = None,
        choices: Optional[Sequence[Any]] = None,
        item: Optional["Field"] = None,
        length: Optional[int] = None,
        sections: Optional["Schema"] = None,
    ) -> None:
        if kind not in _TYPE_WORDS:
            raise ValueError(f"unknown field kind {kind!r}")
        self.kind = kind
        self.default = default
        self.doc = doc
        self.nullable = nullable or default is None
        self.minimum = minimum
        self.maximum = maximum
        self.choices = list(choices) if choices is not None else None
        self.item = item
        self.length = length
        self.sections = sections  # a list whose items are sections of this schema (``sources[2].uri``)

    def expectation(self) -> str:
        """'an integer 1-65535', 'one of fp32, fp16', 'a list of 2 items, each an integer >= 1'"""
        if self.choices is not None:
            words = "one of " + ", ".join(str(c) for c in self.choices)
        else:
            words = _TYPE_WORDS[self.kind]
            if self.kind == "list":
                count = f"{self.length} " if self.length else ""
                each = f", each {self.item.expectation()}" if self.item is not None else ""
                each = ", each a mapping" if self.sections is not None else each
                return f"a list of {count}items{each}" + (" or null" if self.nullable else "")
            if self.minimum is not None and self.maximum is not None:
                words += f" {_num(self.minimum)}-{_num(self.maximum)}"
            elif self.minimum is not None:
                words += f" >= {_num(self.minimum)}"
            elif self.maximum is not None:
                words += f" <= {_num(self.maximum)}"
        if self.nullable:
            words += " or null"
        return words

    def check(self, value: Any, path: str, errors: List[str]) -> Any:
        """Return the value (ints widened to float where a number is expected) or record an error."""
        if value is None:
            if self.nullable:
                return None
            return self._fail(value, path, errors)
        checker = getattr(self, "_check_" + self.kind)
        return checker(value, path, errors)

    def _fail(self, value: Any, path: str, errors: List[str]) -> Any:
        errors.append(f"{path}: expected {self.expectation()}, got {show(value)}")
        return copy.deepcopy(self.default)

    def _in_range(self, value: float) -> bool:
        return (self.minimum is None or value >= self.minimum) and (self.maximum is None or value <= self.maximum)

    def _check_choice(self, value: Any, path: str, errors: List[str]) -> Any:
        if self.choices is not None and value not in self.choices:
            return self._fail(value, path, errors)
        return value

    def _check_int(self, value: Any, path: str, errors: List[str]) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or not self._in_range(value):
            return self._fail(value, path, errors)
        return self._check_choice(value, path, errors)

    def _check_float(self, value: Any, path: str, errors: List[str]) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return self._fail(value, path, errors)
        if value != value or not self._in_range(value):
            return self._fail(value, path, errors)
        return float(value)

    def _check_bool(self, value: Any, path: str, errors: List[str]) -> Any:
        if not isinstance(value, bool):
            return self._fail(value, path, errors)
        return value

    def _check_str(self, value: Any, path: str, errors: List[str]) -> Any:
        if not isinstance(value, str) or (self.minimum is not None and len(value) < self.minimum):
            return self._fail(value, path, errors)
        return self._check_choice(value, path, errors)

    def _check_list(self, value: Any, path: str, errors: List[str]) -> Any:
        if not isinstance(value, list) or (self.length is not None and len(value) != self.length):
            return self._fail(value, path, errors)
        if self.sections is not None:
            for i, v in enumerate(value):
                if not isinstance(v, dict):
                    errors.append(f"{path}[{i}]: expected a mapping, got {show(v)}")
            items = [v for v in enumerate(value) if isinstance(v[1], dict)]
            return [_validate_section(self.sections, v, f"{path}[{i}]", errors) for i, v in items]
        if self.item is None:
            return list(value)
        return [self.item.check(v, f"{path}[{i}]", errors) for i, v in enumerate(value)]

    def _check_map(self, value: Any, path: str, errors: List[str]) -> Any:
        if not isinstance(value, dict):
            return self._fail(value, path, errors)
        out = {}
        for key, inner in value.items():
            if not isinstance(key, str):
                errors.append(f"{path}: keys must be strings, got {show(key)}")
                continue
            out[key] = self.item.check(inner, f"{path}.{key}", errors) if self.item else inner
        return out


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


Schema = Mapping[str, Union[Field, "Mapping[str, Any]"]]


class Node(dict):
    """A validated mapping whose keys also read as attributes (``cfg.mqtt.port``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def get_path(self, dotted: str) -> Any:
        node: Any = self
        for part in dotted.split("."):
            node = node[part]
        return node


def defaults(schema: Schema) -> Node:
    """The value a schema gives when nothing is set."""
    return validate(schema, {}, "")[0]


def validate(schema: Schema, data: Any, prefix: str = "") -> Tuple[Node, List[str]]:
    """Check ``data`` against ``schema``; return the filled-in value and every error found."""
    errors: List[str] = []
    value = _validate_section(schema, data, prefix, errors)
    return value, errors


def _validate_section(schema: Schema, data: Any, prefix: str, errors: List[str]) -> Node:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        errors.append(f"{prefix or '(top level)'}: expected a mapping, got {show(data)}")
        data = {}
    out = Node()
    for key in data:
        if key not in schema:
            where = f"{prefix}.{key}" if prefix else str(key)
            hint = difflib.get_close_matches(str(key), list(schema), n=1)
            suggestion = f' (did you mean "{hint[0]}"?)' if hint else ""
            errors.append(f"{where}: unknown key{suggestion}")
    for key, spec in schema.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(spec, Field):
            if key in data:
                out[key] = spec.check(data[key], path, errors)
            else:
                out[key] = copy.deepcopy(spec.default)  # a loaded value never aliases the schema's
        else:
            out[key] = _validate_section(spec, data.get(key), path, errors)
    return out


def iter_fields(schema: Schema, prefix: str = "") -> List[Tuple[str, Field]]:
    """Every leaf of a schema as (dotted path, field), in declaration order."""
    found: List[Tuple[str, Field]] = []
    for key, spec in schema.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(spec, Field):
            found.append((path, spec))
        else:
            found.extend(iter_fields(spec, path))
    return found


def section_paths(schema: Schema, prefix: str = "") -> Dict[str, Schema]:
    """Every section of a schema by dotted path (the root is '')."""
    found: Dict[str, Schema] = {prefix: schema}
    for key, spec in schema.items():
        if not isinstance(spec, Field):
            found.update(section_paths(spec, f"{prefix}.{key}" if prefix else key))
    return found
