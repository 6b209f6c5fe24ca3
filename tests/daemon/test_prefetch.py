"""Batches formed ahead of the engine: the pure assembly and re-fitting, and the prefetcher thread over
real file captures (the demo stream) with the ONet model's input spec."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pytest

from agent.daemon.prefetch import Prefetcher, assemble, refit
from agent.model.info import InputSpec
from agent.model.preprocess import make_batch, preprocess
from agent.sources.files import VideoFileSource
from agent.sources.frames import Frame, Source
from agent.sources.latest import LatestFrameCapture


@pytest.fixture
def spec(demo_config, make_pipeline) -> InputSpec:
    """The demo model's input at batch 4."""
    pipeline, _ = make_pipeline(demo_config)
    return dataclasses.replace(pipeline.model.spec, batch=4)


@pytest.fixture(scope="module")
def frames(demo_dir) -> List[Frame]:
    source = VideoFileSource(str(demo_dir / "stream.avi"), loop=False)
    read = [source.read() for _ in range(6)]
    source.close()
    return [f for f in read if f is not None]


def wait_until(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(condition())


def test_assemble_uses_the_capture_sample_for_its_spec_and_preprocesses_the_rest(frames, spec):
    marked = np.full(preprocess(frames[0].image, spec)[0].shape, 7.0, dtype=np.float32)
    other = dataclasses.replace(spec, mean=(0.5, 0.5, 0.5))
    taken = [
        (frames[0], (spec, (marked, "box-0"))),  # prepared for this very spec: used as it is
        (frames[1], (dataclasses.replace(spec), (marked, "box-1"))),  # an equal spec: used too
        (frames[2], (other, (marked, "box-2"))),  # prepared for another input: preprocessed again
        (frames[3], None),  # the capture could not prepare it
    ]
    got = assemble(taken, spec)
    expected, boxes = make_batch([f.image for f in frames[2:4]], spec)
    assert got.spec is spec and got.tensor.shape == spec.tensor_shape()
    assert (got.tensor[0] == 7.0).all() and (got.tensor[1] == 7.0).all()
    np.testing.assert_array_equal(got.tensor[2:], expected[:2])
    assert list(got.boxes[:2]) == ["box-0", "box-1"] and list(got.boxes[2:]) == boxes


def test_a_short_batch_is_zero_padded_as_make_batch_pads_it(frames, spec):
    got = assemble([(f, None) for f in frames[:3]], spec)
    expected, _ = make_batch([f.image for f in frames[:3]], spec)
    np.testing.assert_array_equal(got.tensor, expected)
    assert not got.tensor[3].any()


def test_refit_keeps_a_batch_formed_for_the_spec_and_re_forms_one_for_another(frames, spec):
    formed = assemble([(f, None) for f in frames[:4]], spec)
    assert refit(formed, spec) == [formed]
    assert refit(formed, dataclasses.replace(spec)) == [formed]  # equal, not the same object
    smaller = dataclasses.replace(spec, batch=3)
    parts = refit(formed, smaller)
    assert [len(p.taken) for p in parts] == [3, 1] and all(p.spec is smaller for p in parts)
    assert [f.index for p in parts for f, _ in p.taken] == [f.index for f in frames[:4]]
    np.testing.assert_array_equal(parts[0].tensor, make_batch([f.image for f in frames[:3]], smaller)[0])
    np.testing.assert_array_equal(parts[1].tensor, make_batch([frames[3].image], smaller)[0])


def captures_of(demo_dir, count: int, loop: bool) -> List[LatestFrameCapture]:
    return [
        LatestFrameCapture(
            lambda: VideoFileSource(str(demo_dir / "stream.avi"), loop=loop),
            2.0,
            (0.05, 0.5),
            finite=not loop,
            source_id=f"f{i}",
            pull=True,
        )
        for i in range(count)
    ]


@contextlib.contextmanager
def serving(prefetcher: Prefetcher, captures: Sequence[LatestFrameCapture]) -> Iterator[None]:
    """The captures and the prefetcher running for the block; all stopped after it."""
    for capture in captures:
        capture.start()
    prefetcher.start()
    try:
        yield
    finally:
        prefetcher.stop()
        for capture in captures:
            capture.stop()


def test_the_next_batch_is_formed_before_the_loop_asks_for_it(demo_dir, spec):
    captures = captures_of(demo_dir, 4, loop=True)
    prefetcher = Prefetcher(captures, 0.5, lambda: spec)
    with serving(prefetcher, captures):
        first = prefetcher.take(5.0)
        assert first is not None and [f.source_id for f, _ in first.taken] == ["f0", "f1", "f2", "f3"]
        # while the loop would run the engine on the first batch, the prefetcher takes the next frames
        assert wait_until(lambda: all(c.stats()["frames_taken"] == 2 for c in captures)), [c.stats() for c in captures]
        time.sleep(0.1)
        assert all(c.stats()["frames_taken"] == 2 for c in captures)  # one batch ahead, not more
        second = prefetcher.take(0.0)  # already there: no wait
        assert second is not None and [f.index for f, _ in second.taken] == [1, 1, 1, 1]
        assert prefetcher.healthy(time.monotonic())
    assert not prefetcher.healthy(time.monotonic())


def test_finite_sources_end_once_every_frame_was_taken_in_a_batch(demo_dir, spec):
    captures = captures_of(demo_dir, 2, loop=False)
    prefetcher = Prefetcher(captures, 0.5, lambda: spec)
    seen: List[Tuple[str, int]] = []
    with serving(prefetcher, captures):
        while True:
            got = prefetcher.take(5.0)
            if got is None:
                break
            seen.extend((f.source_id, f.index) for f, _ in got.taken)
    total = captures[0].stats()["frames_read"]
    assert total > 10 and prefetcher.sources_done and not prefetcher.error
    assert sorted(seen) == sorted((f"f{i}", k) for i in range(2) for k in range(total))


class BrokenImages(Source):
    """Frames whose images are empty (a driver handing back a zero-sized buffer)."""

    uri = "broken"

    def read(self) -> Optional[Frame]:
        time.sleep(0.01)
        return Frame(np.zeros((0, 0, 3), dtype=np.uint8), 0, time.monotonic(), self.uri)

    def close(self) -> None:
        pass


def test_a_batch_that_cannot_be_formed_is_an_error_the_loop_sees_at_once(spec):
    capture = LatestFrameCapture(BrokenImages, 2.0, (0.05, 0.5), source_id="broken")
    prefetcher = Prefetcher([capture], 0.0, lambda: spec)
    with serving(prefetcher, [capture]):
        started = time.monotonic()
        assert prefetcher.take(5.0) is None
        assert time.monotonic() - started < 2.0
        assert "forming a batch failed: ValueError: frame with shape (0, 0, 3) is not an image" in prefetcher.error


def test_set_captures_forms_the_next_batches_from_the_new_sources(demo_dir, spec):
    old, new = captures_of(demo_dir, 1, loop=True), captures_of(demo_dir, 2, loop=True)
    new[0].source_id, new[1].source_id = "n0", "n1"
    prefetcher = Prefetcher(old, 0.5, lambda: spec)
    with serving(prefetcher, old + new):
        assert prefetcher.take(5.0) is not None
        prefetcher.set_captures(new, 0.5)
        sources = set()
        deadline = time.monotonic() + 5.0
        while sources != {"n0", "n1"} and time.monotonic() < deadline:
            got = prefetcher.take(1.0)
            if got is not None and got.taken[0][0].source_id.startswith("n"):
                sources = {f.source_id for f, _ in got.taken}
        assert sources == {"n0", "n1"}
