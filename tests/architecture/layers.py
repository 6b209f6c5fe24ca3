"""The import graph of agent/ and calibration/, read with ast, checked against the layer order
that docs/architecture.md writes down (so the document and the check cannot drift apart).

Every import counts: module level, function level and under ``if TYPE_CHECKING``. A module may
import its own area and the areas of lower layers, never a higher layer or another area of its
own layer; no two modules may import each other, directly or around a longer cycle.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

PROJECT_PACKAGES = ("agent", "calibration")
ROOT_PACKAGE = "agent"  # `from agent import __version__` is allowed everywhere
ENTRY_POINT = "agent.__main__"


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    target: str  # dotted module (or module.attribute) imported
    line: int


def read_layers(architecture_md: Path) -> List[Tuple[str, ...]]:
    """The numbered list under '## Layers': one line a layer, its areas in backticks, lowest first."""
    text = architecture_md.read_text(encoding="utf-8")
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    layers = []
    for line in section.splitlines():
        if re.match(r"^\d+\. ", line):
            areas = tuple(re.findall(r"`((?:agent|calibration)(?:\.[a-z_]+)*)`", line.split(":", 1)[0]))
            if areas:
                layers.append(areas)
    return layers


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(root: Path, path: Path) -> Iterator[Import]:
    """Every import of a project module in one file, wherever it sits in the file."""
    name = module_name(root, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in PROJECT_PACKAGES:
                yield Import(name, target, node.lineno)


def project_files(root: Path) -> List[Path]:
    return sorted(p for package in PROJECT_PACKAGES for p in (root / package).rglob("*.py"))


def resolve(target: str, modules: Set[str]) -> Optional[str]:
    """The module an import names: ``a.b.c`` is module a.b.c, or attribute c of module a.b."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def area_of(module: str, layers: Sequence[Tuple[str, ...]]) -> Optional[str]:
    """The longest listed area that holds the module."""
    best = None
    for layer in layers:
        for area in layer:
            if (module == area or module.startswith(area + ".")) and (best is None or len(area) > len(best)):
                best = area
    return best


def layer_violations(root: Path, layers: Sequence[Tuple[str, ...]]) -> List[str]:
    """Imports against the order, and modules that sit in no area."""
    rank = {area: i for i, layer in enumerate(layers) for area in layer}
    files = project_files(root)
    modules = {module_name(root, p) for p in files}
    problems = []
    for path in files:
        importer = module_name(root, path)
        if importer == ROOT_PACKAGE:
            continue
        own_area = ENTRY_POINT if importer == ENTRY_POINT else area_of(importer, layers)
        if own_area is None:
            problems.append(f"{path.relative_to(root)}: module {importer} is in no area of docs/architecture.md")
            continue
        own = len(layers) if own_area == ENTRY_POINT else rank[own_area]  # python -m agent: above all
        for imp in imports_of(root, path):
            target = resolve(imp.target, modules)
            if target is None or target == ROOT_PACKAGE:
                continue
            target_area = area_of(target, layers)
            where = f"{path.relative_to(root)}:{imp.line}: {importer} imports {target}"
            if target_area is None:
                problems.append(f"{where}, which is in no area")
            elif target_area != own_area and rank[target_area] >= own:
                relation = "a higher layer" if rank[target_area] > own else "another area of its layer"
                problems.append(f"{where}: {target_area} is {relation}")
    return problems


def import_cycles(root: Path) -> List[List[str]]:
    """Cycles among project modules (every import counts), each as the modules around it."""
    files = project_files(root)
    modules = {module_name(root, p) for p in files}
    graph: Dict[str, Set[str]] = {m: set() for m in modules}
    for path in files:
        importer = module_name(root, path)
        for imp in imports_of(root, path):
            target = resolve(imp.target, modules)
            # a package's __init__ is imported on the way to its modules: not an edge of its own
            if target and target != importer and not importer.startswith(target + "."):
                graph[importer].add(target)
    cycles: List[List[str]] = []
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path_stack: List[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path_stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path_stack[path_stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        path_stack.pop()
        state[node] = 2

    for module in sorted(modules):
        if module not in state:
            visit(module)
    return cycles


def stray_modules(root: Path) -> List[str]:
    """Modules directly under agent/ besides __init__.py and __main__.py."""
    allowed = {"__init__.py", "__main__.py"}
    return sorted(p.name for p in (root / "agent").glob("*.py") if p.name not in allowed)


def function_level_imports(root: Path) -> List[str]:
    """Imports of project modules made inside a function or class body, as 'module:line'."""
    found = []
    for path in project_files(root):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top_level:
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or "."]
                if getattr(node, "level", 0) or any(n.split(".")[0] in PROJECT_PACKAGES for n in names):
                    found.append(f"{module_name(root, path)}:{node.lineno}")
    return found
