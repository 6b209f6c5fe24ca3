"""edge-agent selftest on the shipped sample with ONNX Runtime: real builds, real comparisons."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

pytestmark = pytest.mark.slow


def _selftest(tmp_path: Path, *extra: str) -> "subprocess.CompletedProcess[str]":
    env = {k: v for k, v in os.environ.items() if k not in ("EDGE_AGENT_CONFIG", "PYTHONPATH")}
    command = [sys.executable, "-m", "agent", "selftest", "--workdir", str(tmp_path), "--backend", "onnxruntime"]
    return subprocess.run(
        [*command, "--duration", "0.3", "--trtexec", "none", "--json", *extra],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def _by_precision(report: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {entry["precision"]: entry for entry in report["results"]}


def test_every_precision_the_backend_builds_is_compared_and_benchmarked(tmp_path: Path) -> None:
    done = _selftest(tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report == json.loads((tmp_path / "selftest.json").read_text())
    assert report["passed"] is True and report["labeled_images"] == 200
    assert report["reference_confusion"] == [[100, 0, 0], [0, 100, 0]]  # ONet on LFW, as FIXTURES.md says
    entries = _by_precision(report)
    assert entries["fp16"] == {
        "precision": "fp16",
        "status": "skipped",
        "reasons": ["the onnxruntime backend does not build fp16"],
    }
    for precision in ("fp32", "int8"):
        entry = entries[precision]
        assert entry["status"] == "passed" and entry["reasons"] == []
        assert entry["agreement"]["samples"] == 200 and entry["agreement"]["top1_agreement"] >= 0.99
        assert sum(sum(row) for row in entry["confusion"]) == 200
        assert entry["benchmark"]["latency_ms"]["p50"] > 0 and entry["benchmark"]["iterations"] > 0
    assert entries["fp32"]["agreement"]["max_abs_diff"] == 0.0  # the same model in the same runtime
    assert entries["int8"]["agreement"]["max_abs_diff"] > 0.0  # a quantized model is not bit-exact
    summary: List[str] = (tmp_path / "selftest.txt").read_text().splitlines()
    assert summary[-1] == "selftest PASSED" and any(
        line.startswith("int8: PASSED: top-1 agreement") for line in summary
    )


def test_a_precision_that_misses_the_gate_fails_the_selftest(tmp_path: Path) -> None:
    done = _selftest(tmp_path, "--precisions", "fp32,int8", "--set", "gate.min_cosine=1.0")
    assert done.returncode == 3, done.stderr[-2000:]
    entries = _by_precision(json.loads(done.stdout))
    assert entries["fp32"]["status"] == "passed"  # bit-exact: cosine 1.0
    assert entries["int8"]["status"] in ("not_promoted", "failed")
    assert entries["int8"]["reasons"]


def test_bad_precisions_are_an_input_error(tmp_path: Path) -> None:
    done = _selftest(tmp_path, "--precisions", "fp8")
    assert done.returncode == 2 and "--precisions: expected some of fp32, fp16, int8" in done.stderr
