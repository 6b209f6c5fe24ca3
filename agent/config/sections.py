"""Typed, read-only views of the configuration: one frozen dataclass per schema section.

``Config.from_node(node)`` builds the whole view from a loaded configuration (the validated Node
that agent.config.load returns); each section class has the same ``from_node`` for its own part.
Fields follow the schema in agent.config.keys key for key, in its order and with its types
(tests/foundation/test_sections.py checks both ways), so ``dataclasses.asdict`` of a view equals
the Node it came from. Keys that loading fills in (agent.config.load.DERIVED_KEYS) are never null.
Free-form values (lists, per-class maps) are copies of the Node's, typed List / Dict.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Type, TypeVar, get_type_hints

S = TypeVar("S", bound="Section")


class Section:
    """What every section view shares: construction from its part of the validated Node."""

    @classmethod
    def from_node(cls: Type[S], node: Mapping[str, Any]) -> S:
        """The view of ``node`` (this section's mapping); nested sections become their views."""
        hints = get_type_hints(cls)
        values: Dict[str, Any] = {}
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]
            hint = hints[field.name]
            value = node[field.name]
            item = _section_list_item(hint)
            if isinstance(hint, type) and issubclass(hint, Section):
                values[field.name] = hint.from_node(value)
            elif item is not None:
                values[field.name] = [item.from_node(v) for v in value]
            elif value is None and type(None) not in getattr(hint, "__args__", ()):
                raise ValueError(f"{field.name}: null; build the view from a loaded configuration")
            else:
                values[field.name] = copy.deepcopy(value)
        return cls(**values)


def _section_list_item(hint: Any) -> Optional[Type[Section]]:
    """The section view of a ``List[SomeSection]`` hint (a list of sections, e.g. sources), else None."""
    args: Sequence[Any] = getattr(hint, "__args__", ())
    item = args[0] if getattr(hint, "__origin__", None) is list and args else None
    return item if isinstance(item, type) and issubclass(item, Section) else None


@dataclass(frozen=True)
class DeviceConfig(Section):
    id: str


@dataclass(frozen=True)
class InputConfig(Section):
    name: Optional[str]
    size: Optional[List[int]]
    layout: Optional[str]
    batch: Optional[int]
    color: str
    resize: str
    scale: float
    mean: List[float]
    std: List[float]
    transpose_hw: bool
    letterbox_align: str
    pad_value: float
    placeholder_shape: bool


@dataclass(frozen=True)
class ClassificationConfig(Section):
    activation: str
    top_k: int
    threshold: float
    class_thresholds: Dict[str, float]
    positive_class: Optional[str]


@dataclass(frozen=True)
class DetectionConfig(Section):
    format: str
    decoder: Optional[str]
    conf_threshold: float
    iou_threshold: float
    match_iou: float
    max_detections: int


@dataclass(frozen=True)
class ModelConfig(Section):
    path: str
    task: str
    labels: Optional[List[str]]
    labels_file: Optional[str]
    output: Optional[str]
    class_map: Dict[str, str]  # a value may be null: that model class is ignored (the view types map items plainly)
    input: InputConfig
    classification: ClassificationConfig
    detection: DetectionConfig


@dataclass(frozen=True)
class OnnxRuntimeConfig(Section):
    intra_op_threads: int
    inter_op_threads: int
    graph_optimization: str
    providers: List[str]


@dataclass(frozen=True)
class TensorRTConfig(Section):
    workspace_mb: int
    builder_optimization_level: Optional[int]
    dla_core: Optional[int]
    gpu_fallback: bool
    timing_cache: bool
    build_timeout_s: int
    build_memory_limit_mb: Optional[int]
    cuda_binding: str
    cuda_graph: bool
    int8_calibration: str
    int8_fp16: bool


@dataclass(frozen=True)
class BackendConfig(Section):
    name: str
    onnxruntime: OnnxRuntimeConfig
    tensorrt: TensorRTConfig

    def options(self, backend: str) -> Dict[str, Any]:
        """The option map of backend ``backend`` (onnxruntime, tensorrt), as its build and load take it."""
        return dataclasses.asdict(getattr(self, backend))


@dataclass(frozen=True)
class CalibrationConfig(Section):
    method: str
    percentile: float
    frames: int
    min_spacing_s: float
    dedup_distance: int
    holdout_fraction: float
    per_channel: bool
    max_memory_mb: int


@dataclass(frozen=True)
class GateConfig(Section):
    max_recall_drop_pp: float
    min_top1_agreement: float
    min_cosine: float
    min_box_iou: float
    max_score_diff: float
    max_unmatched_fraction: float
    mixed_precision: bool
    max_excluded_nodes: int
    max_excluded_fraction: float
    fallback: str


@dataclass(frozen=True)
class SourceConfig(Section):
    id: str
    kind: str
    uri: str
    loop: bool
    width: Optional[int]
    height: Optional[int]
    fps: Optional[float]
    fourcc: Optional[str]
    sensor_id: int
    rtsp_latency_ms: int
    decoder: str
    codec: str
    decode_threads: Optional[int]
    read_timeout_s: float
    reopen_backoff_s: List[float]


@dataclass(frozen=True)
class BatchingConfig(Section):
    max_wait_ms: float


@dataclass(frozen=True)
class SchedulesConfig(Section):
    telemetry_s: float
    benchmark_s: float
    check_s: float


@dataclass(frozen=True)
class BenchConfig(Section):
    mode: str
    warmup_s: float
    min_duration_s: float
    min_iterations: int
    max_duration_s: float
    batch_sizes: List[int]
    stability_pct: float
    windows: int


@dataclass(frozen=True)
class TelemetryConfig(Section):
    rate_hz: float
    history_s: float
    sysfs_root: str
    tegrastats: str
    nvml: str
    rapl: str


@dataclass(frozen=True)
class AccuracyConfig(Section):
    spot_labels: Optional[str]
    format: str
    default_label: Optional[str]
    warn_drop_pp: float
    alert_drop_pp: float
    alpha: float
    shadow_fraction: float
    shadow_max_per_s: float
    shadow_window: int
    shadow_min_agreement: float
    live_ring: int
    live_sample_fraction: float
    label_drop_interval_s: float


@dataclass(frozen=True)
class TlsConfig(Section):
    enabled: bool
    ca_file: Optional[str]
    cert_file: Optional[str]
    key_file: Optional[str]


@dataclass(frozen=True)
class OutboxConfig(Section):
    max_messages: int
    max_bytes: int
    max_age_s: float


@dataclass(frozen=True)
class MqttConfig(Section):
    enabled: bool
    host: str
    port: int
    prefix: str
    protocol: str
    keepalive_s: int
    username: Optional[str]
    password_file: Optional[str]
    qos: int
    telemetry_qos: int
    store_telemetry: bool
    reconnect_min_s: float
    reconnect_max_s: float
    tls: TlsConfig
    outbox: OutboxConfig


@dataclass(frozen=True)
class ResultsConfig(Section):
    enabled: bool
    qos: int
    store: bool
    policy: str
    max_per_s: float
    policy_by_source: Dict[str, str]
    max_per_s_by_source: Dict[str, float]
    queue: int


@dataclass(frozen=True)
class SnapshotsConfig(Section):
    enabled: bool
    classes: List[str]
    min_score: float
    end_after_s: float
    max_width: int
    jpeg_quality: int
    min_interval_s: float
    queue: int


@dataclass(frozen=True)
class CommandsConfig(Section):
    enabled: bool
    key_file: Optional[str]
    max_age_s: float
    rate_limit_per_min: int
    max_response_bytes: int
    history_entries: int
    history_bytes: int


@dataclass(frozen=True)
class PathsConfig(Section):
    state_dir: str
    engine_cache: str
    engine_cache_max_mb: int
    calibration_dir: str


@dataclass(frozen=True)
class DaemonConfig(Section):
    shutdown_timeout_s: float
    watchdog: bool
    max_swap_gap_ms: float


@dataclass(frozen=True)
class LoggingConfig(Section):
    level: str


@dataclass(frozen=True)
class FleetRetentionConfig(Section):
    interval_s: float
    telemetry_days: float
    status_days: float
    report_days: float
    event_days: float
    response_days: float
    result_days: float
    quarantine_days: float
    downsample_after_days: float
    downsample_bucket_s: float


@dataclass(frozen=True)
class FleetDashboardConfig(Section):
    listen: str
    command_key: Optional[str]
    command_wait_s: float
    points: int


@dataclass(frozen=True)
class FleetConfig(Section):
    store: str
    group: str
    client_id: Optional[str]
    session_expiry_s: int
    batch_max: int
    batch_wait_s: float
    store_results: bool
    retention: FleetRetentionConfig
    dashboard: FleetDashboardConfig


@dataclass(frozen=True)
class Config(Section):
    """The whole configuration. Functions that need most of it take this; others take their sections."""

    device: DeviceConfig
    model: ModelConfig
    backend: BackendConfig
    precision: str
    calibration: CalibrationConfig
    gate: GateConfig
    source: SourceConfig
    sources: List[SourceConfig]  # never empty once loaded: a lone source is a one-item list
    batching: BatchingConfig
    schedules: SchedulesConfig
    bench: BenchConfig
    telemetry: TelemetryConfig
    accuracy: AccuracyConfig
    mqtt: MqttConfig
    results: ResultsConfig
    snapshots: SnapshotsConfig
    commands: CommandsConfig
    paths: PathsConfig
    daemon: DaemonConfig
    logging: LoggingConfig
    fleet: FleetConfig
