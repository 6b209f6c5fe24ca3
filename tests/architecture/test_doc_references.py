"""Every code location the docs name (``agent.x.y.name``, ``agent/x/y.py``) exists, so the docs
follow the code when modules move."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any, List, Optional, Set

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
DOTTED = re.compile(r"(?<![\w./-])((?:agent|calibration)(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
FILE_SUFFIXES = (".json", ".cache", ".yaml", ".onnx", ".md", ".png", ".txt")  # calibration.json: a file
PATHS = re.compile(r"(?<![\w./-])((?:agent|calibration)/[\w/]+\.py)\b")


def _key_paths(section: Any, prefix: str = "") -> Set[str]:
    """Dotted configuration keys (config.yaml lists every key): `calibration.method` is a key, not code."""
    if not isinstance(section, dict):
        return set()
    paths = set()
    for key, value in section.items():
        paths.add(prefix + key)
        paths |= _key_paths(value, prefix + key + ".")
    return paths


CONFIG_KEYS = _key_paths(yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8")))


def _module_file(dotted: str) -> Optional[Path]:
    base = REPO.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _names_in(path: Path) -> Set[str]:
    """Top-level names of a module and the members of its classes."""
    names: Set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            if isinstance(node, ast.ClassDef):
                names.update(
                    n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                )
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names)
    return names


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module = _module_file(".".join(parts[:cut]))
        if module is not None:
            rest = parts[cut:]
            return not rest or rest[0] in _names_in(module)  # deeper parts: attributes of that name
    return False


def unresolved(text: str) -> List[str]:
    found = [m for m in DOTTED.findall(text) if not m.endswith(FILE_SUFFIXES)]
    missing = [d for d in found if d not in CONFIG_KEYS and not _resolves(d)]
    missing += [p for p in PATHS.findall(text) if not (REPO / p).is_file()]
    return sorted(set(missing))


def test_every_code_location_named_in_the_docs_exists() -> None:
    problems = {doc.name: unresolved(doc.read_text(encoding="utf-8")) for doc in DOCS}
    assert {k: v for k, v in problems.items() if v} == {}


def test_a_moved_module_is_noticed() -> None:
    assert unresolved("see `agent.capture.LatestFrameCapture` and agent/daemon.py") == [
        "agent.capture.LatestFrameCapture",
        "agent/daemon.py",
    ]
    assert unresolved("`agent.sources.latest.LatestFrameCapture`, agent/daemon/loop.py") == []
