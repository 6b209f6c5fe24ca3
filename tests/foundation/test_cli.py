"""The edge-agent command as a user runs it: a subprocess, JSON on stdout, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from agent.cli.main import SUBCOMMANDS

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "agent", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_build_json_cache_hit_and_rebuild_after_corruption(demo_dir: Path, tmp_path: Path) -> None:
    common = ["-c", str(demo_dir / "demo.yaml"), "--set", f"paths.state_dir={tmp_path}", "--json"]
    first = json.loads(cli("build", *common, "--precision", "fp32", check=True).stdout)
    assert first["cache_hit"] is False and first["precision"] == "fp32" and first["backend"] == "onnxruntime"
    assert len(first["model_sha256"]) == 64 and Path(first["engine_path"]).is_file()
    second = json.loads(cli("build", *common, "--precision", "fp32", check=True).stdout)
    assert second["cache_hit"] is True and second["engine_path"] == first["engine_path"]
    engine = Path(first["engine_path"])
    engine.write_bytes(engine.read_bytes()[: engine.stat().st_size // 2])
    third = cli("build", *common, "--precision", "fp32")
    report = json.loads(third.stdout)
    assert report["cache_hit"] is False and "truncated" in report["rebuild_reason"]
    assert "truncated" in third.stderr  # said in the log too


def test_config_check_names_every_bad_key_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("mqtt:\n  port: abc\n  hots: x\nschedules:\n  check_s: -5\nprecision: fp64\n")
    result = cli("config", "check", "-c", str(bad))
    assert result.returncode == 2 and result.stdout == ""
    for key in ("mqtt.port", "mqtt.hots", "schedules.check_s", "precision"):
        assert key in result.stderr
    assert (
        json.loads(cli("config", "check", "-c", str(ROOT / "config.yaml"), "--json", check=True).stdout)["valid"]
        is True
    )


def test_missing_model_is_bad_input(tmp_path: Path) -> None:
    result = cli("build", "--set", f"model.path={tmp_path / 'none.onnx'}", "--set", f"paths.state_dir={tmp_path}")
    assert result.returncode == 2 and "model.path: model file not found" in result.stderr


def subcommand_names() -> List[List[str]]:
    return [
        ["run"],
        ["build"],
        ["calibrate"],
        ["bench"],
        ["check"],
        ["selftest"],
        ["telemetry"],
        ["monitor"],
        ["send"],
        ["keygen"],
        ["fleet", "collect"],
        ["fleet", "serve"],
        ["config", "check"],
        ["demo"],
    ]


@pytest.mark.parametrize("words", subcommand_names(), ids=lambda w: " ".join(w))
def test_help_everywhere(words: List[str]) -> None:
    result = cli(*words, "--help", check=True)
    assert result.stdout.startswith("usage: edge-agent " + " ".join(words))


def test_every_registered_subcommand_is_covered() -> None:
    assert len(SUBCOMMANDS) == 11
    usage = cli("--help", check=True).stdout
    for words in subcommand_names():
        assert words[0] in usage
