"""The report records: each producer's real output, as to_json() gives it, validates against its
docs/schemas file; and the one rule for the precision an engine serves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

from agent.accuracy import check as accuracy
from agent.build import engine as building
from agent.engines.identity import EngineIdentity, engine_label, served_precision
from agent.engines.report import BuildReport
from agent.measure.benchmark import BenchSettings, run_benchmark
from agent.measure.context import result_context
from agent.mqtt.messages import envelope
from tests.mqtt.schemas import validator

QUICK = BenchSettings(warmup_s=0.05, min_duration_s=0.2, min_iterations=20, max_duration_s=2.0, stability_pct=50.0)


def errors(kind: str, payload: Dict[str, Any]) -> List[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator(kind).iter_errors(payload)]


def published(kind: str, body: Dict[str, Any]) -> Dict[str, Any]:
    """``body`` as the daemon puts it on the wire: envelope first."""
    return envelope(kind, "dev1", 1, body)


def test_a_plain_build_report_and_its_report_file(demo_config) -> None:
    fresh = building.build(demo_config)
    body = fresh.to_json()
    assert not errors("build", published("build", body))
    assert body["built_precision"] == "fp32" and body["promoted"] is True and "engine_sha256" in body
    written = json.loads(Path(str(fresh.report_path)).read_text())
    assert {k: v for k, v in written.items() if k != "written"} == body
    hit = building.build(demo_config).to_json()
    assert hit["cache_hit"] is True and "engine_sha256" not in hit and "report_path" not in hit
    assert not errors("build", published("build", hit))
    assert BuildReport.from_json(body).to_json() == body


def test_a_gated_int8_build_report(demo_config) -> None:
    report = building.build(demo_config, "int8")
    body = report.to_json()
    assert not errors("build", published("build", body))
    assert report.promoted and report.built_precision == "int8" and report.gate and report.gate["passed"]
    assert body["calibration_frames"] == report.calibration_frames and "artefacts" in body
    cached = building.build(demo_config, "int8").to_json()  # the gated fields come back from the sidecar
    assert cached["cache_hit"] and cached["gate"] == body["gate"] and cached["decision"] == body["decision"]


def test_the_benchmark_report_as_published(demo_config) -> None:
    build = building.build(demo_config)
    engine, model = building.load_built(demo_config, build)
    with engine:
        report = run_benchmark(engine, model, QUICK, batch_sizes=[1, 2])
    report.context = result_context(build.to_json(), engine.info, report.batch)
    report.engine = EngineIdentity.of(build)
    body = report.to_json()
    assert body["runs"][1]["batch"] == 2 and body["engine"]["precision"] == "fp32"
    assert "throttling" not in body and body["power"] is None  # no sampler: no throttling, power null
    # the daemon adds the accuracy that goes with the speed; without a check it is null with the reason
    daemon = dict(body, accuracy=None, accuracy_reason="accuracy.spot_labels is not set")
    assert not errors("benchmark", published("benchmark", daemon))


def test_the_accuracy_report_with_drift(demo_config) -> None:
    run = building.open_engine(demo_config)
    accuracy.record_baseline(demo_config, run)
    report = accuracy.run_check(demo_config, run)
    body = report.to_json()
    assert not errors("accuracy-report", body)
    assert not errors("accuracy", published("accuracy", body))
    assert report.drift and report.drift["status"] == "ok" and body["engine"] == run.identity.to_json()
    assert list(body)[:7] == ["task", "classes", "matrix_labels", "confusion_matrix", "per_class", "accuracy", "macro"]


@pytest.mark.parametrize(
    "report, served",
    [
        ({"precision": "best", "built_precision": "fp16"}, "fp16"),  # what was built, not what was asked
        ({"precision": "fp32"}, "fp32"),  # no built precision recorded: what was asked
        ({"precision": "int8", "built_precision": None}, "int8"),  # a search that promoted nothing
        ({}, None),
    ],
)
def test_served_precision(report: Dict[str, Any], served: Any) -> None:
    assert served_precision(report) == served
    if "precision" in report:
        assert served_precision(BuildReport.from_json({"backend": "onnxruntime", **report})) == served


def test_identity_and_label_read_both_forms() -> None:
    report = BuildReport("tensorrt", "best", cache_key="k", model_sha256="m", built_precision="int8")
    assert (
        EngineIdentity.of(report) == EngineIdentity.of(report.to_json()) == EngineIdentity("k", "tensorrt", "int8", "m")
    )
    assert engine_label(report) == engine_label(report.to_json()) == "tensorrt int8"
    assert engine_label({}) == "? ?"
    assert EngineIdentity.fp32_reference("ab" * 32).to_json() == {
        "id": "fp32-reference-" + "ab" * 8,
        "backend": "onnxruntime",
        "precision": "fp32",
        "model_sha256": "ab" * 32,
    }
