"""`edge-agent bench` end to end on the demo configuration (real ONet, ONNX Runtime)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli.main import main as cli_main

SYSFS = Path(__file__).resolve().parent.parent / "fixtures" / "sysfs"
QUICK = ["--warmup", "0.05", "--duration", "0.2", "--iterations", "30"]
ACCEPTANCE = {
    "latency_ms",
    "throughput_ips",
    "batch",
    "stable",
    "cov",
    "iterations",
    "duration_s",
    "stages_ms",
    "power",
    "power_unavailable_reason",
    "energy_mj_per_inference",
    "context",
}


def bench(demo_dir: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [
        "bench",
        "-c",
        str(demo_dir / "demo.yaml"),
        "--set",
        f"paths.state_dir={tmp_path / 'state'}",
        *QUICK,
        *extra,
    ]
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, timeout=120)


def test_json_has_every_acceptance_field_and_context(demo_dir: Path, tmp_path: Path) -> None:
    tree = SYSFS / "thor_jp7"
    done = bench(demo_dir, tmp_path, "--json", "--set", f"telemetry.sysfs_root={tree}", "--set", "telemetry.rate_hz=20")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert ACCEPTANCE <= set(out)
    assert out["power"]["rail"] == "VIN" and out["power"]["mean_w"] == pytest.approx(34.842)
    assert out["energy_mj_per_inference"] > 0
    ctx = out["context"]
    assert ctx["device_model"] == "NVIDIA Jetson AGX Thor Developer Kit" and ctx["l4t"] == "38.2.0"
    assert ctx["power_mode"] == "MAXN (id 0)" and ctx["backend"] == "onnxruntime" and ctx["precision"] == "fp32"
    assert (
        ctx["at_start"]["temperatures_c"]["tj-thermal"] == 55.1
        and ctx["at_end"]["temperatures_c"]["gpu-thermal"] is None
    )
    assert len(ctx["model_sha256"]) == 64 and len(ctx["engine_sha256"]) == 64 and ctx["batch"] == 1


def test_no_power_source_is_null_with_a_reason(demo_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty-root"
    empty.mkdir()
    done = bench(demo_dir, tmp_path, "--json", "--set", f"telemetry.sysfs_root={empty}", "--mode", "pipeline")
    out = json.loads(done.stdout)
    assert out["power"] is None and out["energy_mj_per_inference"] is None
    assert out["power_unavailable_reason"].startswith("no power source")
    assert "frame_wait" in out["stages_ms"]


def test_human_output_and_bad_arguments(demo_dir: Path, tmp_path: Path) -> None:
    done = bench(demo_dir, tmp_path, "--no-power")
    assert done.returncode == 0 and "inferences/s" in done.stdout and "--no-power was given" in done.stdout
    bad = bench(demo_dir, tmp_path, "--compare", "fp32")
    assert bad.returncode == 2 and "--compare: expected two of" in bad.stderr
    bad = bench(demo_dir, tmp_path, "--duration", "-1")
    assert bad.returncode == 2 and "--duration" in bad.stderr


def test_an_engine_refused_by_the_gate_is_not_benchmarked(demo_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from agent.build import engine as building

    real_build = building.build

    def build(cfg, precision=None, force=False):
        if precision == "int8":  # what a failed INT8 search reports: nothing promoted
            return {
                "backend": "onnxruntime",
                "precision": "int8",
                "promoted": False,
                "cache_hit": False,
                "report_path": str(tmp_path / "r.json"),
            }
        return real_build(cfg, precision=precision, force=force)

    monkeypatch.setattr(building, "build", build)
    code = cli_main(
        [
            "bench",
            "-c",
            str(demo_dir / "demo.yaml"),
            "--set",
            f"paths.state_dir={tmp_path / 's'}",
            *QUICK,
            "--compare",
            "fp32,int8",
        ]
    )
    assert code == 3
    assert "the int8 engine was not promoted (it failed the accuracy gate" in capsys.readouterr().err


@pytest.mark.slow
def test_compare_fp32_with_int8(demo_dir: Path, tmp_path: Path) -> None:
    done = bench(demo_dir, tmp_path, "--json", "--compare", "fp32,int8")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["precisions"] == ["fp32", "int8"]
    assert out["context"]["a"]["precision"] == "fp32" and out["context"]["b"]["precision"] == "int8"
    assert out["compare"]["throughput_ratio_b_over_a"] > 0
