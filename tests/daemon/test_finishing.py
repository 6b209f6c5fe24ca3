"""Engine outputs finished off the inference thread: results in order, a bounded backlog, failures
that stop the loop instead of vanishing, and a close that delivers what was inferred."""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from agent.daemon.finishing import Finisher, Inferred, results_of
from agent.daemon.prefetch import Assembled
from agent.model.info import InputSpec
from agent.model.tasks.classification import ClassificationDecoder
from agent.sources.frames import Frame

SPEC = InputSpec("x", 4, 4, 3, "NCHW", 2, "RGB", "stretch", 1.0, (0.0,), (1.0,), False)
DECODER = ClassificationDecoder(["cat", "dog"])
IDENTITY = {"engine": "onnxruntime fp32", "engine_id": "k1", "precision": "fp32"}


def decode(outputs: Dict[str, np.ndarray], count: int, boxes: Sequence[Any]) -> List[Any]:
    return DECODER.decode(outputs["scores"], count)


def inferred(batch: int, frames: int = 2, started: float = 100.0) -> Inferred:
    """Batch number ``batch``: frames read 10 ms before ``started``; frame k's logits favour class k % 2."""
    taken = []
    for k in range(frames):
        frame = Frame(np.zeros((4, 4, 3), np.uint8), batch * frames + k, started - 0.01, f"f{k}.png", f"s{k}", 5.0)
        taken.append((frame, None))
    logits = np.array([[2.0, 0.0] if k % 2 == 0 else [0.0, 2.0] for k in range(frames)], dtype=np.float32)
    assembled = Assembled(taken, [None] * frames, np.zeros(SPEC.tensor_shape(), np.float32), SPEC)
    return Inferred(assembled, {"scores": logits}, decode, IDENTITY, started)


def test_results_of_carries_the_frame_the_engine_and_the_decoded_output():
    item = inferred(3)
    results = results_of(item, decode(dict(item.outputs), 2, []))
    assert [frame.index for frame, _ in results] == [6, 7]
    first = results[0][1]
    assert first["source"] == "s0" and first["frame"] == 6 and first["origin"] == "f0.png"
    assert first["frame_time"] == 5.0 and first["frame_age_ms"] == 10.0
    assert {k: first[k] for k in IDENTITY} == IDENTITY
    assert first["predicted"] == 0 and first["top"][0]["label"] == "cat"
    assert results[1][1]["top"][0]["label"] == "dog"


def test_batches_are_finished_in_order_each_sink_once_per_batch():
    batches: List[List[int]] = []
    observed: List[Tuple[int, int]] = []
    printed: List[int] = []
    sinks = [lambda batch: batches.append([result["frame"] for _, result in batch])]
    finisher = Finisher(sinks, lambda frame, result: observed.append((frame.index, result["predicted"])), None)
    finisher.on_result = lambda result: printed.append(result["frame"])
    finisher.start()
    stop = threading.Event()
    for n in range(50):
        finisher.put(inferred(n), stop)
    finisher.close()
    assert batches == [[2 * n, 2 * n + 1] for n in range(50)]
    assert observed == [(k, k % 2) for k in range(100)] and printed == list(range(100))
    assert not finisher.error


def test_a_loop_that_outruns_its_finisher_waits_for_room():
    release = threading.Event()
    finished: List[int] = []

    def slow_sink(batch: Sequence[Tuple[Frame, Dict[str, Any]]]) -> None:
        release.wait(10.0)
        finished.append(batch[0][1]["frame"])

    finisher = Finisher([slow_sink], depth=2)
    finisher.start()
    stop = threading.Event()
    finisher.put(inferred(0), stop)
    finisher.put(inferred(1), stop)  # one being finished, one waiting: full
    third = threading.Thread(target=finisher.put, args=(inferred(2), stop))
    third.start()
    third.join(0.3)
    assert third.is_alive(), "the third batch waits while two are not finished"
    release.set()
    third.join(5.0)
    assert not third.is_alive()
    finisher.close()
    assert finished == [0, 2, 4]


def test_a_stopping_loop_does_not_wait_for_a_stuck_sink():
    hang = threading.Event()
    finisher = Finisher([lambda batch: hang.wait(10.0)], depth=1)
    finisher.start()
    stop = threading.Event()
    finisher.put(inferred(0), stop)
    stop.set()
    started = time.monotonic()
    finisher.put(inferred(1), stop)
    assert time.monotonic() - started < 1.0
    hang.set()
    finisher.close()


def test_a_failing_sink_is_an_error_and_no_later_put_waits():
    def broken(batch: Sequence[Tuple[Frame, Dict[str, Any]]]) -> None:
        raise RuntimeError("the disk is full")

    finisher = Finisher([broken], depth=1)
    finisher.start()
    stop = threading.Event()
    finisher.put(inferred(0), stop)
    deadline = time.monotonic() + 5.0
    while not finisher.error and time.monotonic() < deadline:
        time.sleep(0.01)
    assert finisher.error == "finishing results failed: RuntimeError: the disk is full"
    started = time.monotonic()
    finisher.put(inferred(1), stop)
    finisher.put(inferred(2), stop)
    assert time.monotonic() - started < 1.0
    finisher.close()
