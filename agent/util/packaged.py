"""Files shipped inside installed Python packages, named 'pkg:PACKAGE/RELATIVE/PATH'.

The package is located with importlib's finder, without importing it (some packages that ship
useful models fail on import).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from agent.util.errors import InputError

PREFIX = "pkg:"


def resolve(name: str) -> str:
    """A filesystem path for a plain path or a 'pkg:' name; raise InputError when it is missing."""
    if not name.startswith(PREFIX):
        return name
    package, _, relative = name[len(PREFIX) :].partition("/")
    if not package or not relative:
        raise InputError(f"{name}: expected pkg:PACKAGE/PATH")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"{name}: Python package {package!r} is not installed (pip install it)")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / relative
        if candidate.is_file():
            return str(candidate)
    raise InputError(f"{name}: package {package!r} has no file {relative!r}")
