"""The layer order of docs/architecture.md holds for every import, and no cycle exists."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.architecture.layers import (
    function_level_imports,
    import_cycles,
    layer_violations,
    read_layers,
    stray_modules,
)

REPO = Path(__file__).resolve().parents[2]
LAYERS = read_layers(REPO / "docs" / "architecture.md")


def test_the_document_lists_every_area_once() -> None:
    areas = [area for layer in LAYERS for area in layer]
    assert len(areas) == len(set(areas))
    packages = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "agent").glob("*/__init__.py")} | {
        "calibration"
    }
    assert packages <= set(areas), f"areas missing from docs/architecture.md: {sorted(packages - set(areas))}"


def test_every_import_follows_the_layer_order() -> None:
    assert layer_violations(REPO, LAYERS) == []


def test_no_import_cycles() -> None:
    assert import_cycles(REPO) == []


def test_project_imports_sit_at_module_level() -> None:
    """Only the backend registry imports inside functions: a backend is loaded when asked for
    (TensorRT is optional)."""
    inside = [site for site in function_level_imports(REPO) if not site.startswith("agent.backends.registry:")]
    assert inside == []


def test_agent_holds_only_area_packages() -> None:
    assert stray_modules(REPO) == []


@pytest.fixture()
def copy_of_the_code(tmp_path: Path) -> Path:
    for package in ("agent", "calibration"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def test_an_upward_function_level_import_is_caught(copy_of_the_code: Path) -> None:
    _append(
        copy_of_the_code / "agent" / "util" / "fileio.py",
        "\n\ndef _upward() -> None:\n    from agent.daemon.supervisor import Daemon  # noqa: F401\n",
    )
    problems = layer_violations(copy_of_the_code, LAYERS)
    assert len(problems) == 1
    assert "agent.util.fileio imports agent.daemon.supervisor: agent.daemon is a higher layer" in problems[0]
    assert [s for s in function_level_imports(copy_of_the_code) if s.startswith("agent.util.fileio:")] != []


def test_an_import_across_one_layer_is_caught(copy_of_the_code: Path) -> None:
    _append(
        copy_of_the_code / "agent" / "telemetry" / "energy.py", "\nfrom agent.sources import frames  # noqa: F401\n"
    )
    problems = layer_violations(copy_of_the_code, LAYERS)
    assert len(problems) == 1 and "another area of its layer" in problems[0]


def test_calibration_importing_the_build_layer_is_caught(copy_of_the_code: Path) -> None:
    _append(copy_of_the_code / "calibration" / "gate.py", "\nimport agent.build.engine  # noqa: F401\n")
    assert any("calibration.gate imports agent.build.engine" in p for p in layer_violations(copy_of_the_code, LAYERS))


def test_a_cycle_inside_an_area_is_caught(copy_of_the_code: Path) -> None:
    _append(copy_of_the_code / "agent" / "util" / "errors.py", "\nfrom agent.util import fileio  # noqa: F401\n")
    _append(copy_of_the_code / "agent" / "util" / "fileio.py", "\nfrom agent.util import errors  # noqa: F401\n")
    cycles = import_cycles(copy_of_the_code)
    assert ["agent.util.errors", "agent.util.fileio", "agent.util.errors"] in cycles


def test_a_module_outside_the_areas_is_caught(copy_of_the_code: Path) -> None:
    (copy_of_the_code / "agent" / "stray.py").write_text('"""A module in no area."""\n')
    assert stray_modules(copy_of_the_code) == ["stray.py"]
    assert any("agent.stray is in no area" in p for p in layer_violations(copy_of_the_code, LAYERS))
