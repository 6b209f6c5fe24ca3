"""Progress: a bar on a terminal, rate-limited log lines elsewhere."""

from __future__ import annotations

import io
import logging
from typing import List

import pytest

from agent.util.progress import Progress, render_bar


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_render_bar() -> None:
    assert render_bar("x", 5, 10, width=10) == "x [#####.....] 5/10"
    assert render_bar("x", 3, 0) == "x 3"


def test_terminal_gets_a_redrawn_bar_and_a_final_newline() -> None:
    clock = FakeClock()
    out = Terminal()
    with Progress("frames", 4, stream=out, clock=clock) as progress:
        for _ in range(4):
            clock.now += 1.0
            progress.update(1, "ok")
    text = out.getvalue()
    assert text.count("\r") == 5
    assert "[" + "#" * 30 + "] 4/4 ok" in text
    assert text.endswith("\n")


def test_pipe_gets_log_lines_at_most_every_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    out = io.StringIO()
    caplog.set_level(logging.INFO, logger="edge-agent.progress")
    progress = Progress("frames", 100, stream=out, interval_s=5.0, clock=clock)
    for _ in range(100):
        clock.now += 0.25  # 25 s in all
        progress.update()
    progress.close()
    lines: List[str] = [r.getMessage() for r in caplog.records]
    assert out.getvalue() == ""
    assert 5 <= len(lines) <= 7
    assert lines[-1].startswith("frames: 100/100")


def test_listener_sees_every_step() -> None:
    seen = []
    with Progress("search", 3, stream=io.StringIO(), listener=lambda *args: seen.append(args)) as progress:
        progress.update(1, "entropy: failed")
        progress.update(2, "done")
    assert seen == [("search", 1, 3, "entropy: failed"), ("search", 3, 3, "done")]
