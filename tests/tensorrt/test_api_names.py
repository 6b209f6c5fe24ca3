"""The double is as strict as the release lists, and the backend only names what every release has.

The AST check reads every ``trt.<Name>[.<member>]`` chain in the backend's modules and resolves
it in each release's API list; a chain missing from some release must be one the code guards
with ``hasattr`` (the feature probes in agent.backends.tensorrt.compat). The runtime half of the guarantee is the
double itself: the backend tests run each release's build and load paths against it.
"""

from __future__ import annotations

import ast
import json
import warnings
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

import pytest

from .conftest import RELEASES, use_double

ROOT = Path(__file__).resolve().parents[2]
BACKEND_MODULES = sorted(
    p.relative_to(ROOT).as_posix() for p in (ROOT / "agent" / "backends" / "tensorrt").glob("*.py")
)
API_DIR = Path(__file__).parent / "api"


def _api(release: str) -> Dict[str, Any]:
    return json.loads((API_DIR / f"trt-{release}.json").read_text())


def _members(api: Dict[str, Any], name: str) -> Set[str]:
    """Members of a class (through its bases, and nested attributes) or an enum."""
    if name in api["enums"]:
        return set(api["enums"][name])
    spec = api["classes"][name]
    found = set(spec["methods"]) | set(spec["properties"]) | set(spec.get("attributes", []))
    for base in spec["bases"]:
        found |= _members(api, base)
    return found


def _chains() -> List[Tuple[str, ...]]:
    chains = set()
    for module in BACKEND_MODULES:
        for node in ast.walk(ast.parse((ROOT / module).read_text())):
            parts: List[str] = []
            while isinstance(node, ast.Attribute):
                parts.insert(0, node.attr)
                node = node.value
            if isinstance(node, ast.Name) and node.id == "trt" and parts:
                chains.add(tuple(parts[:2]))
    return sorted(chains)


def _guarded() -> Set[str]:
    """Names the code only uses after a hasattr() probe."""
    names = set()
    for module in BACKEND_MODULES:
        for node in ast.walk(ast.parse((ROOT / module).read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "hasattr"
                and isinstance(node.args[1], ast.Constant)
            ):
                names.add(node.args[1].value)
    return names


def _problems(chains: List[Tuple[str, ...]], guarded: Set[str]) -> List[str]:
    problems = []
    for release in RELEASES:
        api = _api(release)
        top = set(api["classes"]) | set(api["enums"]) | set(api["functions"]) | set(api["module_attributes"])
        for chain in chains:
            if chain[0] not in top:
                if chain[0] not in guarded:
                    problems.append(f"{release}: trt.{chain[0]} is missing and unguarded")
            elif (
                len(chain) > 1
                and (chain[0] in api["classes"] or chain[0] in api["enums"])
                and chain[1] not in _members(api, chain[0])
                and chain[1] not in guarded
            ):
                problems.append(f"{release}: trt.{'.'.join(chain)} is missing and unguarded")
    return problems


def test_backend_names_exist_in_every_release_or_are_guarded() -> None:
    chains = _chains()
    assert ("NetworkDefinitionCreationFlag",) in {c[:1] for c in chains}  # the scan sees the code
    assert _problems(chains, _guarded()) == []


def test_the_name_check_catches_an_unguarded_name() -> None:
    assert _problems([("BuilderFlag", "FP16")], set()) == ["11.1: trt.BuilderFlag.FP16 is missing and unguarded"]
    assert _problems([("IProgressMonitor",)], set())[0] == "8.5.2: trt.IProgressMonitor is missing and unguarded"


@pytest.mark.parametrize(
    "release, missing",
    [
        ("11.1", "BuilderFlag.FP16"),
        ("11.1", "BuilderFlag.INT8"),
        ("11.1", "NetworkDefinitionCreationFlag.EXPLICIT_BATCH"),
        ("11.1", "IInt8EntropyCalibrator2"),
        ("10.3.0", "Builder.build_engine"),
        ("10.3.0", "IExecutionContext.execute_async_v2"),
        ("8.5.2", "NetworkDefinitionCreationFlag.STRONGLY_TYPED"),
        ("8.5.2", "IProgressMonitor"),
        ("8.5.2", "IBuilderConfig.builder_optimization_level"),
    ],
)
def test_double_refuses_names_the_release_lacks(release: str, missing: str, monkeypatch: pytest.MonkeyPatch) -> None:
    trt = use_double(monkeypatch, release)
    owner = trt
    parts = missing.split(".")
    for part in parts[:-1]:
        owner = getattr(owner, part)
    with pytest.raises(AttributeError):
        getattr(owner, parts[-1])


def test_double_resolves_bases_and_refuses_unknown_properties(monkeypatch: pytest.MonkeyPatch) -> None:
    trt = use_double(monkeypatch, "10.13.3")
    assert issubclass(trt.Logger, trt.ILogger) and trt.Logger.ERROR == trt.ILogger.Severity.ERROR
    assert issubclass(trt.IInt8EntropyCalibrator2, trt.IInt8Calibrator)
    config = trt.Builder(None).create_builder_config()
    with pytest.raises(AttributeError, match="has no attribute 'max_workspace_size'"):
        config.max_workspace_size = 1 << 30  # removed in 10.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config.int8_calibrator = None  # deprecated in 10.x
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
    with pytest.raises(NotImplementedError, match="exists in 10.13.3 but is not modelled"):
        config.can_run_on_DLA(None)


def test_api_copies_match_the_shared_lists() -> None:
    shared = ROOT.parent / "shared" / "tensorrt-api"
    if not shared.is_dir():
        pytest.skip("../shared/tensorrt-api is not beside this checkout")
    for release in RELEASES:
        assert (API_DIR / f"trt-{release}.json").read_bytes() == (shared / f"trt-{release}.json").read_bytes(), release
