"""Every configuration key: its type, default, bounds and meaning (the single source of truth
for config.yaml, docs/configuration.md and the typed views in agent.config.sections).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from agent.util.schema import Field, Schema

_NUM = "float"
_SOURCE: Dict[str, Any] = {
    "__doc__": "Where frames come from (one source; see sources for several).",
    "id": Field(
        "str",
        "default",
        "This source's id in results and telemetry: letters, digits, _ and - (an MQTT topic segment).",
    ),
    "kind": Field("str", "v4l2", "Source type.", choices=["v4l2", "csi", "rtsp", "file", "images"]),
    "uri": Field("str", "/dev/video0", "Device (index or /dev/videoN), rtsp:// URL, video file or image folder."),
    "loop": Field("bool", True, "file and images: start again at the end."),
    "width": Field("int", None, "Capture width. null = the source's default.", minimum=1),
    "height": Field("int", None, "Capture height. null = the source's default.", minimum=1),
    "fps": Field(
        _NUM, None, "Capture rate; file and images are paced to it. null = as fast as inference.", minimum=0.1
    ),
    "fourcc": Field("str", None, "V4L2 pixel format, e.g. MJPG or YUYV. null = the driver's default."),
    "sensor_id": Field("int", 0, "CSI camera sensor id (nvarguscamerasrc).", minimum=0),
    "rtsp_latency_ms": Field("int", 200, "RTSP jitter buffer (rtspsrc latency).", minimum=0),
    "decoder": Field(
        "str",
        "auto",
        "rtsp and file: nvv4l2 decodes on Jetson's hardware decoder (nvv4l2decoder, GStreamer); auto uses it "
        "where that element exists, software decodes on the CPU.",
        choices=["auto", "software", "nvv4l2"],
    ),
    "codec": Field(
        "str", "h264", "rtsp and file with the hardware decoder: the stream's codec.", choices=["h264", "h265"]
    ),
    "decode_threads": Field(
        "int",
        None,
        "file, and rtsp without GStreamer, decoded in software: FFmpeg decoder threads for this source. "
        "null = the CPU cores shared among the sources (at least 1 each); OpenCV's own default, all cores "
        "for every decoder, on an OpenCV without the thread parameter (before 4.7).",
        minimum=1,
    ),
    "read_timeout_s": Field(_NUM, 5.0, "A read taking longer re-opens the source.", minimum=0.1),
    "reopen_backoff_s": Field(
        "list",
        [1.0, 30.0],
        "[first, longest] wait between re-open attempts.",
        item=Field(_NUM, 1.0, minimum=0.0),
        length=2,
    ),
}


SCHEMA: Dict[str, Any] = {
    "device": {
        "__doc__": "This device.",
        "id": Field("str", None, "Device id: MQTT client id and topic segment. null = the hostname."),
    },
    "model": {
        "__doc__": "The model to deploy and how to feed it.",
        "path": Field("str", "/etc/edge-agent/model.onnx", "ONNX model file (or pkg:PACKAGE/FILE)."),
        "task": Field("str", "classification", "What the model does.", choices=["classification", "detection"]),
        "labels": Field(
            "list",
            None,
            "Class names in output order. null = labels_file, else class_0, class_1, ...",
            item=Field("str", ""),
        ),
        "labels_file": Field("str", None, "Text file with one class name per line (used when labels is null)."),
        "output": Field("str", None, "Output tensor holding the class scores. null = the first output."),
        "class_map": Field(
            "map",
            {},
            "Model class name -> spot-label class name (many to one); null ignores that model class; classes not "
            "listed keep their name. Applied by the decoder, so results, check, the gate and drift see mapped classes.",
            item=Field("str", None),
        ),
        "input": {
            "__doc__": "Input tensor and preprocessing. null = what the model declares, where that is unambiguous.",
            "name": Field("str", None, "Input tensor name. null = the model's first input."),
            "size": Field(
                "list",
                None,
                "[width, height] the frame is resized to. null = the model's declared size.",
                item=Field("int", 1, minimum=1),
                length=2,
            ),
            "layout": Field(
                "str", None, "Tensor layout. null = inferred from the model's shape.", choices=["NCHW", "NHWC"]
            ),
            "batch": Field(
                "int", None, "Batch size. null = the model's fixed batch, or 1 if dynamic.", minimum=1, maximum=256
            ),
            "color": Field("str", "RGB", "Channel order the model expects.", choices=["RGB", "BGR", "GRAY"]),
            "resize": Field(
                "str",
                "stretch",
                "stretch: plain resize; letterbox: keep aspect ratio and pad.",
                choices=["stretch", "letterbox"],
            ),
            "scale": Field(_NUM, 1.0, "Pixel values are multiplied by this first (1/255 maps 0-255 to 0-1)."),
            "mean": Field(
                "list",
                [0.0, 0.0, 0.0],
                "Subtracted per channel after scaling (one value or one per channel).",
                item=Field(_NUM, 0.0),
            ),
            "std": Field(
                "list",
                [1.0, 1.0, 1.0],
                "Divided per channel after the mean (one value or one per channel).",
                item=Field(_NUM, 1.0, minimum=1e-12),
            ),
            "transpose_hw": Field(
                "bool", False, "Swap image height and width before batching (models trained on transposed images)."
            ),
            "letterbox_align": Field(
                "str",
                "center",
                "Where a letterboxed frame sits in the input: center (padding on both sides) or top_left (YOLOX).",
                choices=["center", "top_left"],
            ),
            "pad_value": Field(_NUM, 114.0, "Letterbox padding value, in 0-255 pixels.", minimum=0.0, maximum=255.0),
            "placeholder_shape": Field(
                "bool",
                False,
                "The model's declared batch, height and width are placeholders (a fully convolutional model, e.g. "
                "CenterFace's [10,3,32,32]): size and batch replace them in the model that is run and built.",
            ),
        },
        "classification": {
            "__doc__": "Decoding of classification outputs.",
            "activation": Field(
                "str",
                "softmax",
                "Applied to the raw outputs. none = they are probabilities already.",
                choices=["softmax", "sigmoid", "none"],
            ),
            "top_k": Field("int", 1, "How many classes each result lists.", minimum=1),
            "threshold": Field(_NUM, 0.0, "Minimum score for a class to be reported.", minimum=0.0, maximum=1.0),
            "class_thresholds": Field(
                "map",
                {},
                "Per-class minimum scores, by class name; override threshold.",
                item=Field(_NUM, 0.0, minimum=0.0, maximum=1.0),
            ),
            "positive_class": Field("str", None, "Binary tasks: the class that counts as positive."),
        },
        "detection": {
            "__doc__": "Decoding of detection outputs.",
            "format": Field(
                "str",
                "yolov8",
                "Output layout: yolov5 [N, A, 5+C]; yolov8 (and 11) [N, 4+C, A]; yolox [N, A, 5+C] raw grid offsets "
                "(strides 8/16/32); centernet: heatmap [N, C, h, w], scale, offset (and landmarks) outputs, in the "
                "model's output order; end2end [N, K, 6] x1, y1, x2, y2, score, class (no NMS). See docs/detection.md.",
                choices=["yolov5", "yolov8", "yolox", "centernet", "end2end"],
            ),
            "decoder": Field(
                "str",
                None,
                "Your own decoder as package.module:function (replaces format; contract in docs/detection.md). "
                "null = the built-in decoder of format.",
            ),
            "conf_threshold": Field(_NUM, 0.25, "Minimum confidence of a detection.", minimum=0.0, maximum=1.0),
            "iou_threshold": Field(
                _NUM, 0.45, "IoU above which non-maximum suppression drops the weaker box.", minimum=0.0, maximum=1.0
            ),
            "match_iou": Field(_NUM, 0.5, "IoU at which a detection matches a labeled box.", minimum=0.0, maximum=1.0),
            "max_detections": Field("int", 300, "At most this many detections per image.", minimum=1),
        },
    },
    "backend": {
        "__doc__": "Inference backend.",
        "name": Field(
            "str",
            "auto",
            "auto: tensorrt where it is installed, else onnxruntime.",
            choices=["auto", "tensorrt", "onnxruntime"],
        ),
        "onnxruntime": {
            "__doc__": "ONNX Runtime options.",
            "intra_op_threads": Field(
                "int", 0, "Threads inside one operator. 0 = ONNX Runtime's default (one per core).", minimum=0
            ),
            "inter_op_threads": Field("int", 0, "Threads across operators. 0 = ONNX Runtime's default.", minimum=0),
            "graph_optimization": Field(
                "str", "all", "Graph optimization level.", choices=["disable", "basic", "extended", "all"]
            ),
            "providers": Field(
                "list", ["CPUExecutionProvider"], "Execution providers in order of preference.", item=Field("str", "")
            ),
        },
        "tensorrt": {
            "__doc__": "TensorRT options (Jetson).",
            "workspace_mb": Field(
                "int",
                1024,
                "Builder memory pool limit (workspace), MiB. Jetson builds run out of memory with larger defaults.",
                minimum=16,
            ),
            "builder_optimization_level": Field(
                "int", None, "0-5 where the release has it (8.6+). null = TensorRT's default.", minimum=0, maximum=5
            ),
            "dla_core": Field(
                "int", None, "DLA core to build for, with GPU fallback. null = GPU only.", minimum=0, maximum=1
            ),
            "gpu_fallback": Field("bool", True, "Let layers the DLA cannot run fall back to the GPU."),
            "timing_cache": Field("bool", True, "Persist and reuse the builder's timing cache."),
            "build_timeout_s": Field(
                "int", 3600, "A build running longer than this is stopped and reported as failed.", minimum=10
            ),
            "build_memory_limit_mb": Field(
                "int", None, "Stop the build process above this resident memory. null = no limit.", minimum=64
            ),
            "cuda_binding": Field(
                "str",
                "auto",
                "CUDA binding for buffers: auto picks cuda-python, then pycuda.",
                choices=["auto", "pycuda", "cuda-python"],
            ),
            "cuda_graph": Field("bool", False, "Capture inference in a CUDA graph and replay it."),
            "int8_calibration": Field(
                "str",
                "qdq",
                "Where INT8 scales come from. qdq: a QDQ model calibrated with ONNX Runtime (explicit quantization, "
                "TensorRT 8.5 to 11). tensorrt: TensorRT's own calibrator over the calibration frames (implicit "
                "quantization, TensorRT below 11; percentile ranges and a failed calibration use a cache from ONNX "
                "Runtime ranges, and the report says so).",
                choices=["qdq", "tensorrt"],
            ),
            "int8_fp16": Field(
                "bool",
                True,
                "INT8 builds also enable FP16 where the GPU has fast FP16, so layers left unquantized run FP16, not "
                "FP32 (weakly typed networks: TensorRT below 11, implicit INT8 on 10.x).",
            ),
        },
    },
    "precision": Field(
        "str",
        "fp32",
        "Engine precision. best: INT8 where it passes the accuracy gate, else FP16, else FP32.",
        choices=["fp32", "fp16", "int8", "best"],
    ),
    "calibration": {
        "__doc__": "INT8 calibration.",
        "method": Field(
            "str", "entropy", "How activation ranges are chosen.", choices=["minmax", "entropy", "percentile"]
        ),
        "percentile": Field(_NUM, 99.999, "Percentile for the percentile method.", minimum=90.0, maximum=100.0),
        "frames": Field("int", 200, "Calibration frames to collect.", minimum=1),
        "min_spacing_s": Field(_NUM, 2.0, "Minimum time between frames captured from a camera.", minimum=0.0),
        "dedup_distance": Field(
            "int",
            4,
            "Frames whose perceptual hashes differ in fewer bits are near-duplicates and skipped.",
            minimum=0,
            maximum=64,
        ),
        "holdout_fraction": Field(
            _NUM, 0.2, "Fraction of calibration frames held out for the accuracy gate.", minimum=0.0, maximum=0.9
        ),
        "per_channel": Field("bool", True, "Per-channel weight scales (recommended)."),
        "max_memory_mb": Field(
            "int",
            2048,
            "Memory for the activations entropy and percentile calibration hold at once; beyond it they use fewer, "
            "evenly spaced frames (the report says so).",
            minimum=64,
        ),
    },
    "gate": {
        "__doc__": "Accuracy gate an INT8 or FP16 engine must pass before it is promoted.",
        "max_recall_drop_pp": Field(
            _NUM,
            1.0,
            "No class's recall may drop by more than this many percentage points.",
            minimum=0.0,
            maximum=100.0,
        ),
        "min_top1_agreement": Field(
            _NUM, 0.99, "Minimum top-1 agreement with the FP32 reference on held-out frames.", minimum=0.0, maximum=1.0
        ),
        "min_cosine": Field(
            _NUM,
            0.99,
            "Minimum cosine similarity of the held-out outputs (all frames as one vector) with the FP32 reference.",
            minimum=0.0,
            maximum=1.0,
        ),
        "min_box_iou": Field(
            _NUM,
            0.9,
            "Detection: minimum mean IoU, per class, of the candidate's boxes matched to the FP32 reference's on "
            "held-out frames (pairs at model.detection.match_iou or more).",
            minimum=0.0,
            maximum=1.0,
        ),
        "max_score_diff": Field(
            _NUM,
            0.1,
            "Detection: largest score difference allowed between a matched candidate box and its FP32 box.",
            minimum=0.0,
            maximum=1.0,
        ),
        "max_unmatched_fraction": Field(
            _NUM,
            0.05,
            "Detection: most boxes left unmatched on either side, per class, as a share of the FP32 reference's boxes "
            "on held-out frames.",
            minimum=0.0,
        ),
        "mixed_precision": Field("bool", True, "On failure, keep the most sensitive layers in higher precision."),
        "max_excluded_nodes": Field(
            "int", 16, "Most layers kept in higher precision before giving up on INT8.", minimum=0
        ),
        "max_excluded_fraction": Field(
            _NUM,
            0.25,
            "... and at most this share of the quantizable layers (beyond it the engine is not INT8 in any useful "
            "sense).",
            minimum=0.0,
            maximum=1.0,
        ),
        "fallback": Field(
            "str", "fp16", "Precision to fall back to when no INT8 engine passes (best only).", choices=["fp16", "fp32"]
        ),
    },
    "source": _SOURCE,
    "sources": Field(
        "list",
        [],
        "Several sources: a list of mappings with the source keys, each with its own unique id. Empty = the one "
        "source above (giving both is an error).",
        sections={k: v for k, v in _SOURCE.items() if k != "__doc__"},
    ),
    "batching": {
        "__doc__": "How frames of several sources share one engine call (batch size: model.input.batch).",
        "max_wait_ms": Field(
            _NUM,
            10.0,
            "Longest wait for the other sources' frames once one source has a frame; a batch then forms without "
            "the sources that have nothing new (DeepStream's batched-push-timeout).",
            minimum=0.0,
        ),
    },
    "schedules": {
        "__doc__": "How often the daemon measures. 0 disables.",
        "telemetry_s": Field(
            _NUM,
            10.0,
            "Seconds between telemetry reports (each reports the latest sample; sampling itself runs at "
            "telemetry.rate_hz).",
            minimum=0.0,
        ),
        "benchmark_s": Field(
            _NUM,
            3600.0,
            "Seconds between benchmarks (each pauses live inference for its warm-up and measurement).",
            minimum=0.0,
        ),
        "check_s": Field(_NUM, 3600.0, "Seconds between accuracy checks on the spot-labeled set.", minimum=0.0),
    },
    "bench": {
        "__doc__": "Benchmark method.",
        "mode": Field(
            "str",
            "engine",
            "engine: pre-made tensors (comparable with trtexec); pipeline: frames through pre- and postprocessing.",
            choices=["engine", "pipeline"],
        ),
        "warmup_s": Field(_NUM, 2.0, "Warm-up time before measuring.", minimum=0.0),
        "min_duration_s": Field(_NUM, 5.0, "Measure at least this long ...", minimum=0.0),
        "min_iterations": Field("int", 50, "... and at least this many iterations.", minimum=1),
        "max_duration_s": Field(
            _NUM,
            60.0,
            "Give up waiting for stable windows after this long; the result then says stable: false.",
            minimum=0.0,
        ),
        "batch_sizes": Field(
            "list",
            [],
            "Batch sizes to measure (the engine must accept them). Empty = the model's batch (model.input.batch).",
            item=Field("int", 1, minimum=1),
        ),
        "stability_pct": Field(
            _NUM, 10.0, "Stable when the last windows' throughput and p50 are within this percentage.", minimum=0.0
        ),
        "windows": Field(
            "int", 3, "Number of windows compared for stability; figures are taken over these last windows.", minimum=2
        ),
    },
    "telemetry": {
        "__doc__": "Power, thermal and clock sampling.",
        "rate_hz": Field(
            _NUM,
            1.0,
            "Sampling rate of the telemetry thread (power for energy per inference comes from these samples).",
            minimum=0.1,
            maximum=20.0,
        ),
        "history_s": Field(_NUM, 600.0, "Seconds of samples kept in memory.", minimum=10.0),
        "sysfs_root": Field("str", "/", "Root of /sys and /proc (a copy taken from a device, for tests)."),
        "tegrastats": Field("str", "auto", "Use tegrastats: auto = when present.", choices=["auto", "on", "off"]),
        "nvml": Field("str", "auto", "Use NVML (x86 NVIDIA GPUs).", choices=["auto", "on", "off"]),
        "rapl": Field("str", "auto", "Use RAPL powercap (x86 CPUs).", choices=["auto", "on", "off"]),
    },
    "accuracy": {
        "__doc__": "Spot-labeled accuracy and drift.",
        "spot_labels": Field(
            "str",
            None,
            "Spot-labeled set: a folder per class, a CSV/JSONL manifest, YOLO txt, COCO JSON, dlib XML or a Pascal "
            "VOC folder.",
        ),
        "format": Field(
            "str",
            "auto",
            "Format of the spot-labeled set.",
            choices=["auto", "folders", "csv", "jsonl", "yolo", "coco", "dlib", "voc"],
        ),
        "default_label": Field(
            "str", None, "dlib XML: class of boxes without a label element (unset: the model's only class, if one)."
        ),
        "warn_drop_pp": Field(_NUM, 3.0, "Recall drop (percentage points) that warns ...", minimum=0.0, maximum=100.0),
        "alert_drop_pp": Field(_NUM, 10.0, "... and that alerts, when also significant.", minimum=0.0, maximum=100.0),
        "alpha": Field(_NUM, 0.05, "Significance level for drift tests.", minimum=0.0, maximum=1.0),
        "shadow_fraction": Field(
            _NUM, 0.02, "Fraction of live frames also run through the FP32 reference.", minimum=0.0, maximum=1.0
        ),
        "shadow_max_per_s": Field(_NUM, 1.0, "Most shadow evaluations per second.", minimum=0.0),
        "shadow_window": Field("int", 500, "Rolling window of shadow results.", minimum=1),
        "shadow_min_agreement": Field(
            _NUM,
            0.9,
            "Per-class agreement with the FP32 reference below which (upper end of its Wilson 95% interval) a drift "
            "event is raised.",
            minimum=0.0,
            maximum=1.0,
        ),
        "live_ring": Field("int", 256, "Sampled live frames kept for labels that arrive later.", minimum=0),
        "live_sample_fraction": Field(
            _NUM, 0.01, "Fraction of live frames kept in that ring.", minimum=0.0, maximum=1.0
        ),
        "label_drop_interval_s": Field(
            _NUM, 30.0, "How often label files dropped in <state_dir>/live/labels/ are applied. 0 = never.", minimum=0.0
        ),
    },
    "mqtt": {
        "__doc__": "MQTT broker and reporting.",
        "enabled": Field("bool", True, "Publish reports and take commands over MQTT."),
        "host": Field("str", "localhost", "Broker host."),
        "port": Field("int", 1883, "Broker port.", minimum=1, maximum=65535),
        "prefix": Field("str", "edge-agent", "Topic prefix: topics are <prefix>/<device_id>/...", minimum=1),
        "protocol": Field("str", "5", "MQTT protocol version.", choices=["5", "3.1.1"]),
        "keepalive_s": Field("int", 30, "Keepalive interval.", minimum=5, maximum=65535),
        "username": Field("str", None, "Username. null = none."),
        "password_file": Field("str", None, "File holding the password (never logged)."),
        "qos": Field("int", 1, "QoS of reports and events.", minimum=0, maximum=1),
        "telemetry_qos": Field("int", 0, "QoS of telemetry.", minimum=0, maximum=1),
        "store_telemetry": Field("bool", False, "Keep telemetry in the outbox during outages too."),
        "reconnect_min_s": Field(_NUM, 1.0, "First reconnect delay.", minimum=0.1),
        "reconnect_max_s": Field(_NUM, 60.0, "Longest reconnect delay.", minimum=0.1),
        "tls": {
            "__doc__": "TLS. Verification is on whenever TLS is.",
            "enabled": Field("bool", False, "Connect with TLS."),
            "ca_file": Field("str", None, "CA certificate file. null = the system's."),
            "cert_file": Field("str", None, "Client certificate file."),
            "key_file": Field("str", None, "Client key file."),
        },
        "outbox": {
            "__doc__": "Durable outbox (SQLite) bounds; the oldest messages go first, and that is reported.",
            "max_messages": Field("int", 10000, "Most messages kept.", minimum=1),
            "max_bytes": Field("int", 50000000, "Most bytes kept.", minimum=1024),
            "max_age_s": Field(_NUM, 604800.0, "Oldest message kept.", minimum=1.0),
        },
    },
    "results": {
        "__doc__": "Inference results on <prefix>/<device>/results/<source_id> (docs/mqtt.md).",
        "enabled": Field(
            "bool", True, "Publish every source's results (needs mqtt.enabled; else they are logged at debug)."
        ),
        "qos": Field("int", 0, "QoS of results.", minimum=0, maximum=1),
        "store": Field(
            "bool", False, "Keep results in the outbox during outages (else dropped while offline, counted)."
        ),
        "policy": Field(
            "str",
            "every_frame",
            "When a source's result is published: every frame; on_change (the class set or a class's count changed); "
            "max_rate (at most max_per_s a second).",
            choices=["every_frame", "on_change", "max_rate"],
        ),
        "max_per_s": Field(_NUM, 5.0, "max_rate: results per second and source.", minimum=0.001),
        "policy_by_source": Field(
            "map",
            {},
            "Source id -> policy, for the sources that differ from policy.",
            item=Field("str", "every_frame", choices=["every_frame", "on_change", "max_rate"]),
        ),
        "max_per_s_by_source": Field(
            "map", {}, "Source id -> max_per_s, for the sources that differ.", item=Field(_NUM, 5.0, minimum=0.001)
        ),
        "queue": Field(
            "int",
            256,
            "Results waiting for the publishing thread; more are dropped (counted), inference never waits.",
            minimum=1,
        ),
    },
    "snapshots": {
        "__doc__": "JPEG snapshots (retained, <prefix>/<device>/snapshot/<source_id>) and object start/end events.",
        "enabled": Field("bool", False, "Track objects per source and class; snapshot each appearance."),
        "classes": Field("list", [], "Classes tracked. Empty = every class.", item=Field("str", "")),
        "min_score": Field(
            _NUM, 0.5, "A class is present in a frame with a score at least this.", minimum=0.0, maximum=1.0
        ),
        "end_after_s": Field(_NUM, 2.0, "An object ends after this long without being seen.", minimum=0.0),
        "max_width": Field("int", 640, "Snapshots wider than this are scaled down.", minimum=16),
        "jpeg_quality": Field("int", 80, "JPEG quality.", minimum=1, maximum=100),
        "min_interval_s": Field(_NUM, 1.0, "Shortest time between two snapshots of one source.", minimum=0.0),
        "queue": Field("int", 8, "Snapshots and events waiting to be sent; more are dropped (counted).", minimum=1),
    },
    "commands": {
        "__doc__": "Remote commands.",
        "enabled": Field("bool", True, "Take signed commands over MQTT."),
        "key_file": Field(
            "str",
            None,
            "Key file: operators' Ed25519 public keys ('ed25519 <key-id> <base64>' lines, 'revoked <key-id> "
            "[reason]'; made by edge-agent keygen), or else one HMAC-SHA256 shared secret (never logged). "
            "null = commands are refused.",
        ),
        "max_age_s": Field(
            _NUM, 300.0, "Requests older (or newer) than this by the device's clock are refused.", minimum=1.0
        ),
        "rate_limit_per_min": Field(
            "int", 10, "Most requests per command per minute (monotonic time: clock jumps do not count).", minimum=1
        ),
        "max_response_bytes": Field(
            "int", 1000000, "Largest final answer (JSON); a larger one is replaced by a too_large error.", minimum=1024
        ),
        "history_entries": Field(
            "int", 1000, "Request ids remembered, so that a repeated id is answered again, never run twice.", minimum=1
        ),
        "history_bytes": Field(
            "int",
            8000000,
            "Most bytes of answers kept for repeated ids; past it the oldest are dropped (their ids still refused).",
            minimum=1024,
        ),
    },
    "paths": {
        "__doc__": "Where state lives.",
        "state_dir": Field(
            "str", "/var/lib/edge-agent", "Baselines, sequence numbers, outbox, current and previous engine."
        ),
        "engine_cache": Field("str", None, "Engine cache. null = <state_dir>/engines."),
        "engine_cache_max_mb": Field("int", 4096, "Cache size cap; least recently used engines go first.", minimum=1),
        "calibration_dir": Field("str", None, "Calibration frames and manifests. null = <state_dir>/calibration."),
    },
    "daemon": {
        "__doc__": "The long-running service.",
        "shutdown_timeout_s": Field(_NUM, 10.0, "Longest clean shutdown before exiting anyway.", minimum=0.5),
        "watchdog": Field(
            "bool",
            True,
            "Send systemd WATCHDOG=1 from inference progress when systemd asks for it (WatchdogSec); a loop stuck in "
            "an inference is then restarted.",
        ),
        "max_swap_gap_ms": Field(
            _NUM,
            500.0,
            "Longest inference gap expected across an engine swap; a longer one is reported (event engine_swapped, "
            "within_bound false).",
            minimum=1.0,
        ),
    },
    "logging": {
        "__doc__": "Logs go to stderr (the journal under systemd).",
        "level": Field("str", "info", "Log level.", choices=["debug", "info", "warning", "error"]),
    },
    "fleet": {
        "__doc__": "The operator's side: edge-agent fleet collect keeps every device's messages in a store.",
        "store": Field(
            "str",
            "sqlite:///var/lib/edge-agent/fleet.sqlite",
            "The store: a path or sqlite:///path (SQLite), or a postgresql:// URL (several collectors, one database).",
            minimum=1,
        ),
        "group": Field(
            "str",
            "edge-agent-collectors",
            "MQTT shared-subscription group: collectors in one group split the load.",
            minimum=1,
        ),
        "client_id": Field(
            "str", None, "The collector's MQTT client id (its persistent session). null = fleet-collector-<hostname>."
        ),
        "session_expiry_s": Field(
            "int", 86400, "How long the broker queues QoS 1 messages for a stopped collector.", minimum=0
        ),
        "batch_max": Field("int", 500, "Most messages stored in one transaction.", minimum=1),
        "batch_wait_s": Field(_NUM, 0.2, "Longest wait for a batch to fill before it is stored.", minimum=0.0),
        "store_results": Field("bool", False, "Keep per-frame result messages too (they are many)."),
        "retention": {
            "__doc__": "How long each kind is kept (days; 0 = forever), applied by the collector.",
            "interval_s": Field(_NUM, 3600.0, "How often retention runs.", minimum=1.0),
            "telemetry_days": Field(_NUM, 30.0, "Telemetry.", minimum=0.0),
            "status_days": Field(
                _NUM, 30.0, "Status messages (the latest of each device is always kept).", minimum=0.0
            ),
            "report_days": Field(_NUM, 365.0, "Benchmark, accuracy, build and calibration reports.", minimum=0.0),
            "event_days": Field(_NUM, 365.0, "Events.", minimum=0.0),
            "response_days": Field(_NUM, 90.0, "Command responses.", minimum=0.0),
            "result_days": Field(_NUM, 1.0, "Per-frame results (when store_results is on).", minimum=0.0),
            "quarantine_days": Field(_NUM, 30.0, "Messages kept aside as malformed.", minimum=0.0),
            "downsample_after_days": Field(
                _NUM, 7.0, "Telemetry older than this keeps one message per device and bucket. 0 = never.", minimum=0.0
            ),
            "downsample_bucket_s": Field(_NUM, 300.0, "That bucket's length.", minimum=1.0),
        },
        "dashboard": {
            "__doc__": "edge-agent fleet serve: the web dashboard and Prometheus /metrics on the store.",
            "listen": Field("str", "127.0.0.1:8080", "HOST:PORT the dashboard listens on.", minimum=3),
            "command_key": Field(
                "str",
                None,
                "Operator's signing key (Ed25519 from edge-agent keygen, or an HMAC secret file): with it the "
                "device page sends signed rebuild, check and benchmark commands. null = read-only.",
            ),
            "command_wait_s": Field(_NUM, 60.0, "How long the page waits for a command's final answer.", minimum=1.0),
            "points": Field("int", 2000, "Most points of each kind a device page plots (the newest).", minimum=10),
        },
    },
}


def schema_tree() -> Schema:
    """SCHEMA without the documentation entries."""

    def strip(section: Dict[str, Any]) -> Dict[str, Any]:
        return {k: (v if isinstance(v, Field) else strip(v)) for k, v in section.items() if k != "__doc__"}

    return strip(SCHEMA)


def field_at(dotted: str) -> Optional[Field]:
    """The field at a dotted key path ('mqtt.port'), or None where the schema has no such key."""
    node: Any = SCHEMA
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, Field) else None
