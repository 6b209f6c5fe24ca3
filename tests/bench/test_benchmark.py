"""run_benchmark with the real ONet engine under ONNX Runtime, in both modes, with power sampled
from a sysfs fixture tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.build import engine as building
from agent.measure.benchmark import BenchSettings, compare_engines, run_benchmark
from agent.model.pipeline import Pipeline, make_decoder
from agent.sources.open import open_source
from agent.telemetry.monitor import Telemetry
from agent.telemetry.sampler import Sampler
from agent.util.errors import InputError

SYSFS = Path(__file__).resolve().parent.parent / "fixtures" / "sysfs"
QUICK = BenchSettings(
    warmup_s=0.05, min_duration_s=0.2, min_iterations=30, max_duration_s=2.0, windows=3, stability_pct=50.0
)


@pytest.fixture
def onet(demo_config):
    report = building.build(demo_config)
    engine, model = building.load_built(demo_config, report)
    yield engine, model
    engine.close()


def test_engine_mode_fields_and_batch_sweep(onet) -> None:
    engine, model = onet
    report = run_benchmark(engine, model, QUICK, batch_sizes=[1, 4]).to_json()
    assert report["mode"] == "engine" and report["batch"] == 1
    assert set(report["latency_ms"]) == {"min", "mean", "p50", "p90", "p95", "p99", "max"}
    assert (
        report["latency_ms"]["min"]
        <= report["latency_ms"]["p50"]
        <= report["latency_ms"]["p99"]
        <= report["latency_ms"]["max"]
    )
    assert list(report["stages_ms"]) == ["compute"]  # ONNX Runtime cannot split its work
    assert set(report["throughput_by_batch"]) == {"1", "4"}
    assert [r["batch"] for r in report["runs"]] == [1, 4]
    assert report["runs"][1]["inferences"] == 4 * report["runs"][1]["iterations"]
    assert report["power"] is None and report["power_unavailable_reason"] == "no telemetry sampler was given"


def test_energy_per_inference_from_the_sampled_input_rail(onet) -> None:
    engine, model = onet
    telemetry = Telemetry(str(SYSFS / "orin_nx_jp6"), tegrastats="off", nvml="off", rapl="off")
    with Sampler(telemetry, rate_hz=20.0) as sampler:
        report = run_benchmark(engine, model, QUICK, sampler=sampler).to_json()
    power = report["power"]
    assert power["rail"] == "VDD_IN" and power["kind"] == "input" and power["samples"] >= 2
    assert power["mean_w"] == pytest.approx(4.5873, abs=1e-3)  # the tree's constant 5008 mV x 916 mA
    window = power["window_s"]
    assert report["energy_mj_per_inference"] == pytest.approx(4587.3 * window / report["inferences"], rel=1e-3)
    assert report["power_unavailable_reason"] is None
    # the tree latches an over-current warning and pins its clocks: throttled, for that reason only
    assert report["throttling"]["reasons"] == ["over-current alarm VDD_CPU_GPU_CV:curr2_max_alarm"]
    assert report["throttling"]["gpu"]["drop_pct"] == 0.0


def test_pipeline_mode_has_every_stage(demo_config, onet) -> None:
    engine, model = onet
    pipeline = Pipeline(engine, model, make_decoder(demo_config.model, model))
    with open_source(demo_config.source, loop=True) as source:
        report = run_benchmark(engine, model, QUICK, mode="pipeline", pipeline=pipeline, source=source).to_json()
    assert list(report["stages_ms"]) == ["frame_wait", "preprocess", "compute", "postprocess"]
    assert report["iterations"] >= 30


def test_a_source_that_ends_is_a_clear_error(demo_config, onet) -> None:
    engine, model = onet
    pipeline = Pipeline(engine, model, make_decoder(demo_config.model, model))
    with open_source(demo_config.source, loop=False) as source:
        with pytest.raises(InputError, match="ended during the benchmark"):
            run_benchmark(
                engine,
                model,
                BenchSettings(warmup_s=0.0, min_duration_s=10.0, min_iterations=1000),
                mode="pipeline",
                pipeline=pipeline,
                source=source,
            )


def test_compare_the_same_engine_with_itself(onet) -> None:
    engine, model = onet
    result = compare_engines(engine, engine, model, QUICK, rounds=4)
    assert min(result["a"]["iterations"], result["b"]["iterations"]) >= 32  # 8 per block, 4 blocks each
    assert 0.5 < result["p50_ratio_b_over_a"] < 2.0


def test_a_sampler_without_power_passes_on_its_reason(onet, tmp_path) -> None:
    engine, model = onet
    telemetry = Telemetry(str(tmp_path), tegrastats="off", nvml="off", rapl="off")
    with Sampler(telemetry, rate_hz=10.0) as sampler:
        report = run_benchmark(engine, model, QUICK, sampler=sampler).to_json()
    assert report["power"] is None and report["energy_mj_per_inference"] is None
    assert report["power_unavailable_reason"].startswith("no power source: no INA3221/INA238 rails")
    assert report["throttling"]["throttled"] is None and report["throttling"]["samples"] >= 1  # sampled, nothing known
