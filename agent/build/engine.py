"""Build (or find in the cache) the engine for the configured model, backend and precision."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from agent.accuracy.check import EngineRun
from agent.backends.base import Backend, BuildOutput, BuildRequest, Engine
from agent.backends.registry import get_backend
from agent.engines.store import EngineStore, cache_key
from agent.model.pipeline import Pipeline, PreparedModel, make_decoder, prepare_model
from agent.util.errors import EngineIncompatible, GateFailed
from agent.util.fileio import atomic_write_json
from agent.util.progress import Listener
from agent.util.schema import Node

log = logging.getLogger(__name__)


def engine_store(cfg: Node) -> EngineStore:
    return EngineStore(cfg.paths.engine_cache, cfg.paths.engine_cache_max_mb * 1024 * 1024)


def backend_options(cfg: Node, backend: Backend) -> Dict[str, Any]:
    return dict(cfg.backend[backend.name])


def key_fields(
    backend: Backend,
    model: PreparedModel,
    precision: str,
    options: Mapping[str, Any],
    source_model_sha256: str,
    calibration_hash: Optional[str] = None,
) -> Dict[str, Any]:
    """Everything that makes an engine valid, and nothing else (so a change means a rebuild)."""
    return {
        "backend": backend.name,
        "backend_version": backend.version(),
        "device": backend.device_identity(),
        "precision": precision,
        "model_sha256": model.sha256,
        "source_model_sha256": source_model_sha256,
        "calibration_hash": calibration_hash,
        "input_shapes": {k: list(v) for k, v in model.input_shapes().items()},
        "build_options": {k: v for k, v in sorted(options.items()) if k in BUILD_OPTION_KEYS.get(backend.name, ())},
    }


# Options that change the built engine; runtime-only options (threads, CUDA binding) stay out of the key.
BUILD_OPTION_KEYS = {
    "onnxruntime": ("graph_optimization",),
    "tensorrt": ("workspace_mb", "builder_optimization_level", "dla_core", "gpu_fallback"),
}


def build_cached(
    cfg: Node,
    backend: Backend,
    model: PreparedModel,
    precision: str,
    source_model_sha256: str,
    calibration_hash: Optional[str] = None,
    calibration_cache: Optional[str] = None,
    force: bool = False,
    keep: Sequence[str] = (),
) -> Dict[str, Any]:
    """Find the engine in the cache or build it; return the build report."""
    options = backend_options(cfg, backend)
    fields = key_fields(backend, model, precision, options, source_model_sha256, calibration_hash)
    key = cache_key(fields)
    store = engine_store(cfg)
    found = store.lookup(key)
    report: Dict[str, Any] = {
        "backend": backend.name,
        "backend_version": fields["backend_version"],
        "precision": precision,
        "model_sha256": source_model_sha256,
        "built_model_sha256": model.sha256,
        "calibration_hash": calibration_hash,
        "cache_key": key,
        "input_shapes": fields["input_shapes"],
    }
    if found.hit and not force:
        assert found.entry is not None
        built = found.entry.meta.get("build", {})
        report.update(engine_path=found.entry.engine_path, cache_hit=True, rebuild_reason=None, build_time_s=0.0)
        report.update(built_precision=built.get("precision", precision), notes=built.get("notes", []))
        return report
    reason = "forced" if force else found.reason
    request = BuildRequest(model.path, precision, model.input_shapes(), options, calibration_cache)
    started = time.monotonic()
    output_holder: Dict[str, BuildOutput] = {}

    def run_build(tmp_path: str) -> Dict[str, Any]:
        output = backend.build(request, tmp_path)
        output_holder["out"] = output
        return {k: v for k, v in asdict(output).items() if k != "log"}

    log.info("building %s %s engine for %s (%s)", backend.name, precision, model.path, reason)
    entry = store.put(key, fields, backend.engine_suffix, run_build, keep=keep)
    output = output_holder["out"]
    report.update(
        engine_path=entry.engine_path,
        cache_hit=False,
        rebuild_reason=None if reason == "not cached" else reason,
        build_time_s=round(time.monotonic() - started, 3),
        built_precision=output.precision,
        notes=output.notes,
        engine_sha256=entry.meta["engine_sha256"],
    )
    return report


def build(
    cfg: Node,
    precision: Optional[str] = None,
    force: bool = False,
    progress: Optional[Listener] = None,
    keep: Sequence[str] = (),
) -> Dict[str, Any]:
    """The engine for the config (``precision`` overrides cfg.precision); returns its report.

    int8 and best run the gated INT8 search (calibration.workflow). Its report has ``promoted``:
    a failed int8 search promotes nothing (the caller keeps the engine it has) and ``gate`` says
    why; best falls back to gate.fallback and says so. Every report that is not a cache hit is
    also written to <state_dir>/reports/build-<time>.json (``report_path``) for publishing.
    ``progress`` is called on every step of calibration and of the INT8 search. ``keep``: cache
    keys that storing this engine must not evict (the daemon's current and previous engines).
    """
    precision = precision or cfg.precision
    backend = get_backend(cfg.backend.name)
    if precision in ("int8", "best"):
        from calibration.promote import build_quantized

        options = backend_options(cfg, backend)
        report = build_quantized(
            cfg,
            backend,
            precision,
            force,
            build_reference=lambda model: build_cached(cfg, backend, model, "fp32", model.sha256, keep=keep),
            store=engine_store(cfg),
            base_fields=lambda model, calibration_hash: key_fields(
                backend, model, precision, options, model.sha256, calibration_hash
            ),
            listener=progress,
            keep=keep,
        )
    else:
        model = prepare_model(cfg)
        report = build_cached(cfg, backend, model, precision, model.sha256, force=force, keep=keep)
        report["promoted"] = True
    if not report["cache_hit"]:
        report["report_path"] = write_report(cfg, report)
    return report


def write_report(cfg: Node, report: Mapping[str, Any]) -> str:
    """Store a build report under <state_dir>/reports (atomically); return its path."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    path = Path(cfg.paths.state_dir) / "reports" / f"build-{stamp}-{str(report.get('cache_key', ''))[:8]}.json"
    atomic_write_json(path, {**report, "report_path": str(path), "written": time.time()})
    return str(path)


def load_built(cfg: Node, report: Mapping[str, Any]) -> Tuple[Engine, PreparedModel]:
    """Load the engine a build report names, with the model spec that feeds it.

    An engine the runtime refuses (built by another TensorRT release or for another device:
    "magic tag", "version tag does not match") is removed from the cache and rebuilt once.
    """
    if report.get("promoted") is False or not report.get("engine_path"):
        where = f"; see {report['report_path']}" if report.get("report_path") else ""
        raise GateFailed(
            f"the {report.get('precision')} engine was not promoted (it failed the accuracy gate{where}); there is "
            "nothing to load"
        )
    backend = get_backend(report["backend"])
    try:
        engine = backend.load(report["engine_path"], backend_options(cfg, backend))
    except EngineIncompatible as exc:
        log.warning("%s; removing it from the cache and rebuilding", exc)
        engine_store(cfg).discard(report["cache_key"])
        report = build(cfg, precision=report["precision"])
        engine = backend.load(report["engine_path"], backend_options(cfg, backend))
    engine.info.update(precision=report.get("built_precision", report["precision"]), cache_key=report["cache_key"])
    return engine, prepare_model(cfg)


def open_engine(cfg: Node, precision: Optional[str] = None) -> EngineRun:
    """The configured engine (built or found in the cache), as inference runs it."""
    report = build(cfg, precision=precision)
    engine, model = load_built(cfg, report)
    identity = {
        "id": report["cache_key"],
        "backend": report["backend"],
        "precision": report["built_precision"],
        "model_sha256": report["model_sha256"],
    }
    return EngineRun(Pipeline(engine, model, make_decoder(cfg, model)), identity)
