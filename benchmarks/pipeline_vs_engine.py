"""Pipeline throughput (capture thread + inference loop) against engine-only throughput, same model.

Engine-only: the engine's infer() in a tight loop on one pre-made tensor. Pipeline: the daemon's
own LatestFrameCapture reading an unpaced video file and preprocessing each frame on its thread,
and the daemon's InferenceLoop (its batch prefetcher, engine calls and results finisher) on
others. Rounds alternate (engine, pipeline, ...) so both see the same machine state; the median of
each is compared. Target: pipeline >= 0.9 of engine-only.

    .venv/bin/python -m benchmarks.pipeline_vs_engine [--seconds 5] [--rounds 3] [--no-write]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, cast

import numpy as np

from agent.build import engine as building
from agent.config.load import load_config
from agent.config.sections import Config
from agent.daemon.finishing import Sink
from agent.daemon.loop import InferenceLoop, prepare_for
from agent.daemon.swap import Handoff
from agent.demo import sample as demo
from agent.model.pipeline import Pipeline, make_decoder
from agent.model.preprocess import make_batch
from agent.sources.decode import decode_threads, usable_cores
from agent.sources.files import VideoFileSource
from agent.sources.frames import Source
from agent.sources.latest import LatestFrameCapture, combined_stats
from benchmarks.report import output_options, publish

CAMERA_FACTOR = 1.25


def open_pipeline(config: Path, state: Path, threads: int, overrides: Sequence[str] = ()) -> Pipeline:
    """The configured FP32 engine, built under ``state``; ``overrides``: more KEY=VALUE (e.g. the batch)."""
    settings = [f"paths.state_dir={state}", f"backend.onnxruntime.intra_op_threads={threads}", *overrides]
    node = load_config(str(config), settings)
    cfg = Config.from_node(node)
    report = building.build(cfg, precision="fp32")
    engine, model = building.load_built(cfg, report)
    return Pipeline(engine, model, make_decoder(cfg.model, model))


def engine_only(pipeline: Pipeline, video: Path, seconds: float) -> float:
    """Frames inferred per second: full batches of the video's first frame in a tight loop."""
    import cv2

    capture = cv2.VideoCapture(str(video))
    ok, image = capture.read()
    capture.release()
    assert ok, f"cannot read {video}"
    size = pipeline.model.spec.batch
    batch, _ = make_batch([image] * size, pipeline.model.spec)
    feeds = {pipeline.model.spec.name: batch}
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        pipeline.engine.infer(feeds)
        count += size
    return count / (time.perf_counter() - started)


def file_source(
    video: Path, fps: Optional[float], sources: int = 1, opencv_threads: bool = False
) -> Callable[[], Source]:
    """What the daemon opens for ``{kind: file, uri: video, loop: true, fps: fps}``, one of ``sources``
    (``opencv_threads``: with OpenCV's default decoder threads instead of the daemon's)."""
    count = None if opencv_threads else decode_threads(None, sources, usable_cores())
    return lambda: VideoFileSource(str(video), loop=True, fps=fps, threads=count)


def full_pipeline(
    pipeline: Pipeline,
    open_source: Callable[[], Source],
    seconds: float,
    pull: bool,
    sources: int = 1,
    sinks: Sequence[Sink] = (),
    max_wait_s: float = 0.0,
) -> Tuple[float, Dict[str, Any]]:
    """Frames inferred per second by the daemon's captures (``sources`` of them, each over its own
    ``open_source()``; ``pull`` as the daemon reads an unpaced file: every frame, none dropped) and its
    batched InferenceLoop, each result handed to ``sinks``; and the captures' stats, with where the CPU
    went: the inference thread's CPU per frame inferred, and every other thread's together in cores."""
    captures = [
        LatestFrameCapture(
            open_source, 5.0, (0.1, 1.0), prepare=prepare_for(lambda: pipeline), source_id=f"cam{i}", pull=pull
        )
        for i in range(sources)
    ]
    report = {"backend": "onnxruntime", "precision": "fp32"}
    loop = InferenceLoop(captures, pipeline, report, Handoff(), lambda: None, sinks=sinks, max_wait_s=max_wait_s)
    for capture in captures:
        capture.start()
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    loop.first_inference.wait(10.0)
    assert thread.ident is not None
    loop_clock = time.pthread_getcpuclockid(thread.ident)
    start_count, started = loop.inferences, time.perf_counter()
    loop_cpu, process_cpu = time.clock_gettime(loop_clock), time.process_time()
    time.sleep(seconds)
    loop_cpu, process_cpu = time.clock_gettime(loop_clock) - loop_cpu, time.process_time() - process_cpu
    frames, wall = loop.inferences - start_count, time.perf_counter() - started
    loop.stop_event.set()
    thread.join(5.0)
    for capture in captures:
        capture.stop()
    cpu = {
        "inference_thread_us_per_frame": round(loop_cpu / frames * 1e6, 1),
        "other_threads_cores": round((process_cpu - loop_cpu) / wall, 2),
    }
    return frames / wall, {**combined_stats(captures), **cpu}


def engine_only_cpu(pipeline: Pipeline, video: Path, seconds: float) -> Tuple[float, float]:
    """:func:`engine_only` and the CPU it took per frame, in us."""
    process_cpu, started = time.process_time(), time.perf_counter()
    rate = engine_only(pipeline, video, seconds)
    frames = rate * (time.perf_counter() - started)
    return rate, round((time.process_time() - process_cpu) / frames * 1e6, 1)


def resnet_setup(folder: Path) -> Tuple[Path, Path]:
    """A ResNet-18-shaped model and a 640x480 video of the astronaut photo, with their config."""
    import cv2
    import onnx
    import yaml

    from agent.util import packaged
    from benchmarks.resnet import resnet18

    model = folder / "resnet18.onnx"
    onnx.save(resnet18(), str(model))
    photo = cast(np.ndarray, cv2.imread(packaged.resolve("pkg:skimage/data/astronaut.png")))
    video = folder / "astronaut.avi"
    fourcc: int = cv2.VideoWriter_fourcc(*"MJPG")  # type: ignore[attr-defined]  # missing from cv2's stubs only
    writer = cv2.VideoWriter(str(video), fourcc, 30.0, (640, 480))
    for shift in range(60):
        writer.write(cv2.resize(np.roll(photo, shift * 4, axis=1), (640, 480)))
    writer.release()
    config = folder / "resnet.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {
                    "path": str(model),
                    "input": {"scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
                },
                "backend": {"name": "onnxruntime"},
                "source": {"kind": "file", "uri": str(video)},
                "mqtt": {"enabled": False},
            }
        )
    )
    return config, video


def compare(
    name: str,
    config: Path,
    video: Path,
    state: Path,
    seconds: float,
    rounds: int,
    camera_factor: Optional[float],
    threads: int,
) -> Dict[str, Any]:
    """Alternate engine-only and pipeline rounds. ``camera_factor``: pace the file at that multiple of
    the engine-only rate just measured (a camera faster than inference); None: unpaced."""
    pipeline = open_pipeline(config, state, threads)
    engine_rates: List[float] = []
    pipeline_rates: List[float] = []
    stats: Dict[str, Any] = {}
    for _ in range(rounds):
        engine_rates.append(engine_only(pipeline, video, seconds))
        fps = engine_rates[-1] * camera_factor if camera_factor else None
        rate, stats = full_pipeline(pipeline, file_source(video, fps), seconds, fps is None)
        pipeline_rates.append(rate)
    engine, piped = statistics.median(engine_rates), statistics.median(pipeline_rates)
    source = f"paced at {camera_factor:g}x engine-only rate" if camera_factor else "unpaced (as fast as inference)"
    return {
        "model": name,
        "source": source,
        "threads": threads or "all cores",
        "engine_ips": engine,
        "pipeline_ips": piped,
        "ratio": piped / engine,
        "dropped_last_round": stats["dropped"],
        "frame_age_ms_p50": stats["frame_age_ms_p50"],
        "engine_rounds": engine_rates,
        "pipeline_rounds": pipeline_rates,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    output_options(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        demo.prepare(work / "demo")
        onet = ("MTCNN ONet 48x48, 96x96 frames", work / "demo" / "demo.yaml", work / "demo" / "stream.avi")
        config, video = resnet_setup(work)
        resnet = ("ResNet-18-shaped 224x224, 640x480 frames", config, video)
        settings = ((CAMERA_FACTOR, 1), (None, 1), (CAMERA_FACTOR, 0))  # (source pacing, ONNX Runtime threads)
        rows = [
            compare(name, cfg, vid, work / f"s{i}", args.seconds, args.rounds, factor, threads)
            for i, ((name, cfg, vid), (factor, threads)) in enumerate((m, s) for m in (onet, resnet) for s in settings)
        ]
    lines = [
        "## Pipeline vs engine-only throughput (benchmarks/pipeline_vs_engine.py)",
        "",
        "Method: the same ONNX Runtime FP32 engine, measured alternately "
        f"({args.rounds} rounds of {args.seconds:g} s each, medians compared). "
        "Engine-only: `infer()` in a tight loop on one",
        "pre-made tensor. Pipeline: the daemon's LatestFrameCapture decoding an MJPG video and",
        "preprocessing each frame on its own thread, the daemon's InferenceLoop doing inference and decode.",
        f"The paced rows model a camera faster than inference ({CAMERA_FACTOR:g}x the engine-only rate of the round);",
        "the unpaced rows read the file as the daemon reads `fps: null`: the next frame once inference took",
        "this one (no frame decoded to be dropped). ORT threads 1 leaves the second core of this",
        "2-core machine to capture and preprocess (as a Jetson's CPU is free while its GPU infers); 'all",
        "cores' lets ONNX Runtime's thread pool compete with the capture thread. Target: pipeline >= 0.9",
        "of engine-only.",
        "",
        "| model | source | ORT threads | engine-only inf/s | pipeline inf/s | ratio | frame age p50 ms "
        "| frames dropped (last round) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['source']} | {r['threads']} | {r['engine_ips']:.1f} | {r['pipeline_ips']:.1f} "
            f"| {r['ratio']:.3f} | {r['frame_age_ms_p50']} | {r['dropped_last_round']} |"
        )
    text = "\n".join(lines)
    for r in rows:
        print(
            r["model"],
            r["source"],
            "engine rounds",
            [round(x, 1) for x in r["engine_rounds"]],
            "pipeline rounds",
            [round(x, 1) for x in r["pipeline_rounds"]],
        )
    publish("pipeline_vs_engine", text, args.no_write)


if __name__ == "__main__":
    main()
