"""The context block: device facts from a device tree, build facts, start and end state."""

from __future__ import annotations

import hashlib
from pathlib import Path

from agent.measure.context import result_context
from agent.telemetry.monitor import Telemetry

SYSFS = Path(__file__).resolve().parent.parent / "fixtures" / "sysfs"


def test_context_from_an_orin_tree(tmp_path: Path) -> None:
    root = SYSFS / "orin_agx_jp5"
    telemetry = Telemetry(str(root), tegrastats="off", nvml="off", rapl="off")
    engine_file = tmp_path / "engine.plan"
    engine_file.write_bytes(b"serialized engine")
    report = {
        "backend": "tensorrt",
        "backend_version": "8.5.2",
        "built_precision": "int8",
        "model_sha256": "a" * 64,
        "engine_path": str(engine_file),
        "cache_key": "k",
    }
    start = telemetry.read()
    ctx = result_context(report, {}, 4, telemetry.describe(), start, telemetry.read(), str(root))
    assert ctx["device_model"] == "Jetson AGX Orin Developer Kit" and ctx["l4t"] == "35.4.1"
    assert ctx["power_mode"] == "MAXN (id 0)" and ctx["power_source"] == "sysfs" and ctx["clocks_pinned"] is False
    assert ctx["backend"] == "tensorrt" and ctx["precision"] == "int8" and ctx["batch"] == 4
    assert ctx["engine_sha256"] == hashlib.sha256(b"serialized engine").hexdigest()
    assert ctx["at_start"]["temperatures_c"]["GPU-therm"] is None and ctx["at_end"]["clocks"]["gpu_mhz"] == 306.0


def test_context_without_telemetry_or_engine_file() -> None:
    ctx = result_context(
        {"backend": "onnxruntime", "precision": "fp32"}, {"backend_version": "1.32.0"}, 1, root="/nonexistent"
    )
    assert ctx["device_model"] is None and ctx["l4t"] is None and ctx["at_start"] is None
    assert ctx["backend_version"] == "1.32.0" and ctx["engine_sha256"] is None and ctx["precision"] == "fp32"
