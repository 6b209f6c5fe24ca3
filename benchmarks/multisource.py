"""Several sources into one batched engine (issue 13): pipeline vs engine-only, and the cost of results.

Rows, each measured in alternating rounds in one run (medians compared):

- 4 file sources of the demo stream (the shape of ``sources: [{id, kind: file, uri, loop: true,
  fps: null}, ...]``: unpaced, read as fast as inference takes frames) into the ONet engine at
  ``model.input.batch: 4``: the daemon's captures, batch prefetcher, batched InferenceLoop and results finisher
  (benchmarks/pipeline_vs_engine.py's pipeline, four sources) vs engine-only at batch 4, in frames
  inferred per second. Target >= 0.9. The same with the sources paced like cameras (1.25x the
  engine's rate in all), with ONNX Runtime on all cores, and with the stream decoded once into
  memory (the pipeline's own cost without video decoding).
- ResNet-18-shaped, 1 source, batch 1 (paced at 1.25x the engine-only rate): target >= 0.9.
- 4 sources, results published at every frame over a real mosquitto (the daemon's
  ResultsPublisher on its DeviceLink) vs the same pipeline without: target a cost < 5%.

    .venv/bin/python -m benchmarks.multisource [--seconds 5] [--rounds 3] [--note TEXT] [--no-write]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from agent.config.load import load_config
from agent.config.sections import Config
from agent.daemon.finishing import Sink
from agent.daemon.results import ResultsPublisher
from agent.demo import sample as demo
from agent.model.pipeline import Pipeline
from agent.mqtt.publisher import open_publisher
from agent.sources.decode import MAX_DECODE_THREADS, decode_threads, usable_cores
from agent.sources.frames import Frame, Source
from benchmarks.pipeline_vs_engine import (
    CAMERA_FACTOR,
    engine_only_cpu,
    file_source,
    full_pipeline,
    open_pipeline,
    resnet_setup,
)
from benchmarks.report import output_options, publish

SOURCES = 4
MAX_WAIT_MS = 20.0
# (row, ONNX Runtime threads (0: all cores), pacing of the sources together as a multiple of engine-only,
# frames decoded once into memory)
ONET_ROWS = (
    ("unpaced_threads1", 1, None, False),
    ("paced_threads1", 1, CAMERA_FACTOR, False),
    ("unpaced_all", 0, None, False),
    ("memory_threads1", 1, None, True),
)


class DecodedFrames(Source):
    """A video decoded once, served from memory in a loop: the pipeline without per-frame decoding."""

    def __init__(self, images: Sequence[np.ndarray]) -> None:
        self.uri = "memory"
        self.images = images
        self.count = 0

    def read(self) -> Optional[Frame]:
        frame = Frame(self.images[self.count % len(self.images)], self.count, time.monotonic(), self.uri)
        self.count += 1
        return frame


def decoded(video: Path) -> List[np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(str(video))
    images = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        images.append(image)
    capture.release()
    return images


def median_of(rounds: List[float]) -> float:
    return round(statistics.median(rounds), 1)


def spread(rounds: List[float]) -> str:
    return f"{min(rounds):.0f}-{max(rounds):.0f}"


def pipeline_vs_engine(
    pipeline: Pipeline,
    video: Path,
    seconds: float,
    rounds: int,
    sources: int,
    pace: Optional[float],
    in_memory: bool = False,
    opencv_threads_too: bool = False,
) -> Dict[str, Any]:
    """Engine-only and pipeline rounds in turn; ``pace``: the sources' fps as a multiple of the
    engine-only rate just measured (None: unpaced, read as fast as inference takes frames);
    ``in_memory``: the video's frames decoded once, unpaced; ``opencv_threads_too``: each round also
    runs the pipeline with OpenCV's default decoder threads instead of the daemon's."""
    images = decoded(video) if in_memory else []
    engine: List[float] = []
    engine_cpu: List[float] = []
    piped: List[Tuple[float, Dict[str, Any]]] = []
    opencv_threads: List[Tuple[float, Dict[str, Any]]] = []
    wait_s = MAX_WAIT_MS / 1000.0
    for _ in range(rounds):
        rate, cpu = engine_only_cpu(pipeline, video, seconds)
        engine.append(rate)
        engine_cpu.append(cpu)
        fps = engine[-1] * pace / sources if pace else None
        source = (lambda: DecodedFrames(images)) if in_memory else file_source(video, fps, sources)
        piped.append(full_pipeline(pipeline, source, seconds, fps is None, sources, max_wait_s=wait_s))
        if opencv_threads_too:
            default = file_source(video, fps, sources, opencv_threads=True)
            opencv_threads.append(full_pipeline(pipeline, default, seconds, fps is None, sources, max_wait_s=wait_s))
    compared = {"opencv_threads": pipeline_summary(opencv_threads, engine)} if opencv_threads else {}
    return {
        **compared,
        **pipeline_summary(piped, engine),
        "engine_ips": median_of(engine),
        "engine_cpu_us_per_frame": median_of(engine_cpu),
        "engine_rounds": [round(x, 1) for x in engine],
    }


def pipeline_summary(runs: List[Tuple[float, Dict[str, Any]]], engine: List[float]) -> Dict[str, Any]:
    """Medians of :func:`full_pipeline` rounds (rate, stats), the ratio to engine-only's median, and the
    last round's frame age."""
    rates = [rate for rate, _ in runs]
    return {
        "pipeline_ips": median_of(rates),
        "ratio": round(statistics.median(rates) / statistics.median(engine), 3),
        "pipeline_rounds": [round(x, 1) for x in rates],
        "inference_thread_us_per_frame": median_of([stats["inference_thread_us_per_frame"] for _, stats in runs]),
        "other_threads_cores": round(statistics.median(stats["other_threads_cores"] for _, stats in runs), 2),
        "frame_age_ms_p50": runs[-1][1].get("frame_age_ms_p50"),
    }


def results_cost(config: Config, pipeline: Pipeline, video: Path, seconds: float, rounds: int) -> Dict[str, Any]:
    """The 4-source pipeline without and with every result published, rounds in turn."""
    plain: List[float] = []
    published: List[float] = []
    link = open_publisher(config, {}, lambda: {})
    link.start()
    sink = ResultsPublisher(link, config.results)
    sink.start()
    sinks: Sequence[Sink] = [sink.offer]
    try:
        for _ in range(rounds):
            source = file_source(video, None, SOURCES)
            plain.append(full_pipeline(pipeline, source, seconds, True, SOURCES, max_wait_s=MAX_WAIT_MS / 1000.0)[0])
            rate, _ = full_pipeline(pipeline, source, seconds, True, SOURCES, sinks, MAX_WAIT_MS / 1000.0)
            published.append(rate)
    finally:
        sink.stop()
        link.stop()
    stats = sink.stats()
    cost = 1.0 - statistics.median(published) / statistics.median(plain)
    return {
        "without_ips": median_of(plain),
        "with_ips": median_of(published),
        "cost": round(cost, 3),
        "published": stats["published"],
        "dropped": stats["dropped"],
        "without_rounds": [round(x, 1) for x in plain],
        "with_rounds": [round(x, 1) for x in published],
    }


def measure(work: Path, seconds: float, rounds: int, progress: Callable[[str], None]) -> Dict[str, Any]:
    binary = demo.find_mosquitto()
    if binary is None:
        raise SystemExit("the results row needs mosquitto (apt-get install mosquitto)")
    demo.prepare(work / "demo")
    onet_config, stream = work / "demo" / "demo.yaml", work / "demo" / "stream.avi"
    batch4 = [f"model.input.batch={SOURCES}"]
    out: Dict[str, Any] = {"seconds": seconds, "rounds": rounds}
    for name, threads, pace, in_memory in ONET_ROWS:
        onet = open_pipeline(onet_config, work / f"onet{threads}", threads, batch4)
        both = name == "unpaced_threads1"  # the daemon's decoder threads and OpenCV's, side by side
        out[name] = pipeline_vs_engine(onet, stream, seconds, rounds, SOURCES, pace, in_memory, both)
        progress(f"ONet, {SOURCES} sources, batch {SOURCES}, {name}: {out[name]}")
    resnet_config, video = resnet_setup(work)
    resnet = open_pipeline(resnet_config, work / "resnet", 1)
    out["resnet"] = pipeline_vs_engine(resnet, video, seconds, rounds, 1, CAMERA_FACTOR)
    progress(f"ResNet-18, 1 source, batch 1: {out['resnet']}")
    broker = demo.Mosquitto(binary, work / "broker").start()
    try:
        settings = [
            f"paths.state_dir={work / 'onet1'}",
            "mqtt.enabled=true",
            f"mqtt.port={broker.port}",
            "mqtt.host=127.0.0.1",
            "results.policy=every_frame",
        ]
        config = Config.from_node(load_config(str(onet_config), settings))
        onet = open_pipeline(onet_config, work / "onet1", 1, batch4)
        out["results"] = results_cost(config, onet, stream, seconds, rounds)
        progress(f"results at every frame: {out['results']}")
    finally:
        broker.stop()
    return out


def markdown(r: Dict[str, Any], note: str) -> str:
    onet = "ONet 48x48, 96x96 frames"
    paced = f"{CAMERA_FACTOR:g}x engine rate in all"
    ours = decode_threads(None, SOURCES, usable_cores())
    opencv = min(usable_cores(), MAX_DECODE_THREADS)  # OpenCV's default (fill_codec_context, cap_ffmpeg_impl.hpp)
    unpaced = r["unpaced_threads1"]
    rows = [
        (onet, f"{SOURCES} files, unpaced, decoder threads {ours} each (the daemon's)", SOURCES, 1, unpaced),
        (
            onet,
            f"{SOURCES} files, unpaced, decoder threads {opencv} each (OpenCV's default)",
            SOURCES,
            1,
            {**unpaced, **unpaced["opencv_threads"]},
        ),
        (onet, f"{SOURCES} files, {paced}", SOURCES, 1, r["paced_threads1"]),
        (onet, f"{SOURCES} files, unpaced", SOURCES, "all cores", r["unpaced_all"]),
        (onet, f"{SOURCES} in memory (decoded once), unpaced", SOURCES, 1, r["memory_threads1"]),
        ("ResNet-18-shaped 224x224, 640x480 frames", f"1 file, {paced}", 1, 1, r["resnet"]),
    ]
    res = r["results"]
    lines = [
        "## Several sources into one batched engine (benchmarks/multisource.py)",
        "",
        f"Method: engine-only and pipeline measured alternately ({r['rounds']} rounds of {r['seconds']:g} s, medians "
        "compared), ONNX Runtime FP32. Engine-only: `infer()` on full batches",
        "of one pre-made frame in a tight loop, frames/s = calls/s x batch. Pipeline: one LatestFrameCapture per "
        "source (each looping the demo",
        f"stream's MJPG file, decoding and preprocessing on its own thread), the daemon's batch prefetcher "
        f"(max_wait_ms {MAX_WAIT_MS:g}; it forms the next batch while the engine runs), its batched",
        "InferenceLoop (one engine call per batch) and its results finisher (decoding, the results split back "
        "per source, the sinks, while the engine runs the next batch). Results row: the same "
        f"{SOURCES}-source pipeline",
        "with the daemon's ResultsPublisher (policy every_frame, QoS 0, not stored) on a DeviceLink to a local "
        "mosquitto, alternating with",
        "rounds without it. Targets: pipeline >= 0.9 of engine-only; results cost < 5%. Unpaced files are read "
        "as the daemon reads",
        "`fps: null` on a file: the next frame once inference took this one (none decoded to be dropped), "
        "decoding and preprocessing",
        "on the capture threads while the engine runs; paced ones model cameras 1.25x faster than inference "
        "together (latest frame",
        "wins, the rest dropped). The in-memory row serves the stream decoded once: the captures, batcher and "
        "loop without video decoding.",
        "FFmpeg decodes each file with the daemon's decoder threads (`source.decode_threads` null: the cores "
        "shared among the sources);",
        "the second row runs, in the same rounds, OpenCV's default of every core for every decoder.",
        "ORT threads 1 leaves the second core to the captures (as a Jetson's CPU is free while its GPU infers).",
        "CPU columns (medians over the rounds): engine-only's process CPU per frame, the inference thread's CPU "
        "per frame inferred in the pipeline",
        "(its engine calls and its own Python), and every other thread (captures, decoders, prefetcher, finisher; "
        "with ORT on all cores also ORT's pool) together, in cores.",
        f"Load: {note}" if note else "",
        "",
        "| model | sources | batch | ORT threads | engine-only frames/s | pipeline frames/s | ratio "
        "| rounds min-max: engine-only / pipeline | CPU us per frame: engine-only / inference thread "
        "| other threads, cores | frame age p50 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, sources, batch, threads, row in rows:
        lines.append(
            f"| {model} | {sources} | {batch} | {threads} | {row['engine_ips']} | {row['pipeline_ips']} "
            f"| {row['ratio']} | {spread(row['engine_rounds'])} / {spread(row['pipeline_rounds'])} "
            f"| {row['engine_cpu_us_per_frame']} / {row['inference_thread_us_per_frame']} "
            f"| {row['other_threads_cores']} | {row['frame_age_ms_p50']} |"
        )
    lines += [
        "",
        "| results publishing (ONet, 4 sources, batch 4, ORT threads 1) | pipeline frames/s without | with "
        "| rounds min-max: without / with | cost | results published / dropped |",
        "|---|---|---|---|---|---|",
        f"| every frame, QoS 0 | {res['without_ips']} | {res['with_ips']} "
        f"| {spread(res['without_rounds'])} / {spread(res['with_rounds'])} | {res['cost'] * 100:.1f}% "
        f"| {res['published']} / {res['dropped']} |",
    ]
    return "\n".join(lines)


def main() -> None:
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    output_options(parser, note=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-multisource-") as tmp:
        result = measure(Path(tmp), args.seconds, args.rounds, lambda line: print(line, flush=True))
    print(json.dumps(result, indent=2))
    publish("multisource", markdown(result, args.note), args.no_write)


if __name__ == "__main__":
    main()
