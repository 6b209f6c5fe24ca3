"""Stage times of the TensorRT runtime's CUDA path on a real GPU, with the engine stood in for.

Run on a GPU machine: ``python -m tests.gpu.measure OUT.json``. For each importable binding and a
few input sizes it runs the runtime (pinned buffers, async copies, events) around a CuPy kernel
computing 2x+1 on the engine's stream, with and without CUDA graph replay, and writes medians of
the h2d / compute / d2h event times, the host wall time and the copy bandwidths.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any, Dict, List

import numpy as np

from agent.backends.tensorrt.cuda import BINDINGS, open_cuda
from agent.backends.tensorrt.runtime import TensorRTEngine

from .test_cuda_layer import StandInEngine

SHAPES = [(1, 48, 48, 3), (8, 3, 224, 224), (32, 3, 640, 640)]


def measure(binding: str, shape: tuple, graph: bool, iterations: int = 200) -> Dict[str, Any]:
    layer = open_cuda(binding)
    stand_in = StandInEngine(layer, kernel=True, features=shape[1:])
    engine = TensorRTEngine(stand_in, layer, {}, cuda_graph=graph)
    stand_in._stream = engine._stream
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    samples: List[Dict[str, float]] = []
    for i in range(iterations + 20):
        start = time.perf_counter()
        outputs, times = engine.infer_timed({"x": x})
        times["wall"] = (time.perf_counter() - start) * 1000.0
        if i >= 20:
            samples.append(times)
    np.testing.assert_allclose(outputs["y"], 2 * x + 1, rtol=1e-6)
    engine.close()
    median = {k: round(statistics.median(s[k] for s in samples), 4) for k in samples[0]}
    gbps = {f"{k}_GBps": round(x.nbytes / (median[k] * 1e6), 2) for k in ("h2d", "d2h")}
    return {
        "binding": binding,
        "shape": list(shape),
        "mib": round(x.nbytes / 2**20, 3),
        "cuda_graph": graph,
        "median_ms": median,
        **gbps,
    }


def main(path: str) -> None:
    results = []
    for binding in BINDINGS:
        for shape in SHAPES:
            for graph in (False, True):
                results.append(measure(binding, shape, graph))
                print(json.dumps(results[-1]))
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
