"""Build (or find in the cache) the engine for the configured model, backend and precision."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

from agent.accuracy.check import EngineRun
from agent.backends.base import Backend, BuildOutput, BuildRequest, Engine
from agent.backends.registry import get_backend
from agent.config.sections import BackendConfig, Config, PathsConfig
from agent.engines.identity import EngineIdentity, served_precision
from agent.engines.report import BuildReport
from agent.engines.store import EngineStore, cache_key
from agent.model.pipeline import Pipeline, PreparedModel, make_decoder, prepare_model
from agent.util.cancel import CancelCheck, ambient, check, scope
from agent.util.errors import EdgeAgentError, EngineIncompatible, GateFailed, InputError
from agent.util.fileio import atomic_write_json
from agent.util.progress import Listener
from calibration import conformance
from calibration.promote import build_quantized

log = logging.getLogger(__name__)


def engine_store(paths: PathsConfig) -> EngineStore:
    return EngineStore(paths.engine_cache, paths.engine_cache_max_mb * 1024 * 1024)


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
    "tensorrt": (
        "workspace_mb",
        "builder_optimization_level",
        "dla_core",
        "gpu_fallback",
        "int8_fp16",
        "int8_calibration",
    ),
}


def build_cached(
    backend_cfg: BackendConfig,
    paths: PathsConfig,
    backend: Backend,
    model: PreparedModel,
    precision: str,
    source_model_sha256: str,
    calibration_hash: Optional[str] = None,
    force: bool = False,
    keep: Sequence[str] = (),
) -> BuildReport:
    """Find the engine in the cache (paths.engine_cache) or build it with the backend section's options;
    return the build report."""
    options = backend_cfg.options(backend.name)
    fields = key_fields(backend, model, precision, options, source_model_sha256, calibration_hash)
    key = cache_key(fields)
    store = engine_store(paths)
    found = store.lookup(key)
    report = BuildReport(
        backend=backend.name,
        backend_version=fields["backend_version"],
        precision=precision,
        model_sha256=source_model_sha256,
        built_model_sha256=model.sha256,
        calibration_hash=calibration_hash,
        cache_key=key,
        input_shapes=fields["input_shapes"],
    )
    if found.hit and not force:
        assert found.entry is not None
        built = found.entry.meta.get("build", {})
        report.engine_path, report.cache_hit = found.entry.engine_path, True
        report.built_precision, report.notes = built.get("precision", precision), built.get("notes", [])
        return report
    reason = "forced" if force else found.reason
    request = BuildRequest(model.path, precision, model.input_shapes(), options)
    started = time.monotonic()
    output_holder: Dict[str, BuildOutput] = {}

    def run_build(tmp_path: str) -> Dict[str, Any]:
        output = backend.build(request, tmp_path)
        output_holder["out"] = output
        return {k: v for k, v in asdict(output).items() if k != "log"}

    log.info("building %s %s engine for %s (%s)", backend.name, precision, model.path, reason)
    entry = store.put(key, fields, backend.engine_suffix, run_build, keep=keep)
    output = output_holder["out"]
    report.engine_path = entry.engine_path
    report.rebuild_reason = None if reason == "not cached" else reason
    report.build_time_s = round(time.monotonic() - started, 3)
    report.built_precision, report.notes = output.precision, output.notes
    report.engine_sha256 = entry.meta["engine_sha256"]
    return report


def build(
    config: Config,
    precision: Optional[str] = None,
    force: bool = False,
    progress: Optional[Listener] = None,
    keep: Sequence[str] = (),
    cancel: Optional[CancelCheck] = None,
) -> BuildReport:
    """The engine for the whole configuration (``precision`` overrides its precision); returns its report.

    int8 and best run the gated INT8 search (calibration.workflow). Its report has ``promoted``:
    a failed int8 search promotes nothing (the caller keeps the engine it has) and ``gate`` says
    why; best falls back to gate.fallback and says so. A model that is already quantized is built
    as is instead (``build_prequantized``). Every report that is not a cache hit is
    also written to <state_dir>/reports/build-<time>.json (``report_path``) for publishing.
    ``progress`` is called on every step of calibration and of the INT8 search. ``keep``: cache
    keys that storing this engine must not evict (the daemon's current and previous engines).
    ``cancel`` (e.g. a daemon's stop flag; by default the enclosing agent.util.cancel.scope's) is
    tested throughout the INT8 search and before each build: agent.util.cancel.Cancelled ends it,
    leaving no working files behind.
    """
    cancel = cancel or ambient()
    with scope(cancel):  # the backend's own build sees it too (a TensorRT build child is stopped)
        report = _build(config, precision or config.precision, force, progress, keep, cancel)
    if not report.cache_hit:
        report.report_path = write_report(config.paths.state_dir, report)
    return report


def _build(
    config: Config,
    precision: str,
    force: bool,
    progress: Optional[Listener],
    keep: Sequence[str],
    cancel: Optional[CancelCheck],
) -> BuildReport:
    backend = get_backend(config.backend.name)
    model = prepare_model(config.model)
    if precision in ("int8", "best") and model.info.quantized:
        report = build_prequantized(config, backend, model, precision, force, keep)
    elif precision in ("int8", "best"):
        options = config.backend.options(backend.name)
        report = build_quantized(
            config,
            backend,
            precision,
            force,
            build_reference=lambda model: build_cached(
                config.backend, config.paths, backend, model, "fp32", model.sha256, keep=keep
            ),
            store=engine_store(config.paths),
            base_fields=lambda model, calibration_hash: key_fields(
                backend, model, precision, options, model.sha256, calibration_hash
            ),
            listener=progress,
            keep=keep,
            cancel=cancel,
        )
    elif model.info.quantized:  # an INT8 model served as fp32/fp16 would report a precision it does not have
        raise InputError(
            f"model.path {model.path} is already quantized (Q/DQ nodes): build it with precision int8 or best, not "
            f"{precision}"
        )
    else:
        check(cancel, f"the {precision} build")
        report = build_cached(
            config.backend, config.paths, backend, model, precision, model.sha256, force=force, keep=keep
        )
        report.promoted = True
    return report


def build_prequantized(
    config: Config, backend: Backend, model: PreparedModel, precision: str, force: bool, keep: Sequence[str]
) -> BuildReport:
    """int8 or best from a model that already has Q/DQ nodes (NVIDIA ModelOpt, pytorch-quantization, ...):
    built as is, without calibration or the INT8 search. For TensorRT the model is first checked against
    TensorRT's explicit-quantization rules (calibration.conformance): an InputError lists each violation."""
    if backend.name == "tensorrt":
        conformance.require_file(model.path)
        checked = "it conforms to TensorRT's explicit-quantization rules"
    else:
        checked = (
            f"the {backend.name} backend runs Q/DQ models natively: TensorRT's explicit-quantization rules are not "
            "checked"
        )
    report = build_cached(config.backend, config.paths, backend, model, "int8", model.sha256, force=force, keep=keep)
    report.precision, report.promoted = precision, True
    report.decision = (
        "built as given: model.path is already quantized (Q/DQ nodes), so there was no calibration and no INT8 "
        "search, and there is no FP32 model to gate it against"
        + ("; best does not fall back to gate.fallback" if precision == "best" else "")
    )
    report.notes = list(report.notes or []) + [
        checked,
        "the daemon's accuracy check on the spot-labeled set (accuracy.spot_labels) still judges the engine it serves",
    ]
    return report


def write_report(state_dir: str, report: BuildReport) -> str:
    """Store a build report under <state_dir>/reports (atomically); return its path."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    path = Path(state_dir) / "reports" / f"build-{stamp}-{(report.cache_key or '')[:8]}.json"
    atomic_write_json(path, {**report.to_json(), "report_path": str(path), "written": time.time()})
    return str(path)


class EngineDamaged(EdgeAgentError):
    """A build report's engine is not in the cache as its sidecar describes it."""


def load_built(config: Config, report: Union[BuildReport, Mapping[str, Any]]) -> Tuple[Engine, PreparedModel]:
    """Load the engine a build report (or its JSON form, as the daemon keeps it) names, with the
    model spec that feeds it.

    The engine file is verified against its cache sidecar first (EngineDamaged when it is missing,
    truncated or corrupted: the entry is removed, a build makes it again). An engine the runtime
    refuses (built by another TensorRT release or for another device:
    "magic tag", "version tag does not match") is removed from the cache and rebuilt once (so this
    takes the whole configuration, as build does).
    """
    if not isinstance(report, BuildReport):
        report = BuildReport.from_json(report)
    if report.promoted is False or not report.engine_path:
        where = f"; see {report.report_path}" if report.report_path else ""
        raise GateFailed(
            f"the {report.precision} engine was not promoted (it failed the accuracy gate{where}); there is "
            "nothing to load"
        )
    backend = get_backend(report.backend)
    found = engine_store(config.paths).lookup(str(report.cache_key))  # sidecar size and sha256, every load
    if not found.hit:
        raise EngineDamaged(f"the saved {report.precision} engine {report.cache_key} cannot be served: {found.reason}")
    assert found.entry is not None
    report.engine_path = found.entry.engine_path  # this cache's file, wherever the report was written
    try:
        engine = backend.load(report.engine_path, config.backend.options(backend.name))
    except EngineIncompatible as exc:
        log.warning("%s; removing it from the cache and rebuilding", exc)
        engine_store(config.paths).discard(str(report.cache_key))
        report = build(config, precision=report.precision)
        engine = backend.load(str(report.engine_path), config.backend.options(backend.name))
    engine.info.update(precision=served_precision(report), cache_key=report.cache_key)
    return engine, prepare_model(config.model)


def open_engine(config: Config, precision: Optional[str] = None) -> EngineRun:
    """The configured engine (built or found in the cache), as inference runs it."""
    report = build(config, precision=precision)
    engine, model = load_built(config, report)
    return EngineRun(Pipeline(engine, model, make_decoder(config.model, model)), EngineIdentity.of(report))
