"""Wakeup: the binary hand-off signal of the batcher and the pull-mode capture, with real threads."""

from __future__ import annotations

import threading
import time

from agent.util.wakeup import Wakeup


def test_a_set_is_seen_once_and_clear_forgets_it() -> None:
    signal = Wakeup()
    assert not signal.wait(0.0)
    signal.set()
    signal.set()  # binary: two sets before a wait are one wake-up
    assert signal.wait(0.0)
    assert not signal.wait(0.0)
    signal.set()
    signal.clear()
    assert not signal.wait(0.05)


def test_wait_times_out_then_wakes_on_a_set_from_another_thread() -> None:
    signal = Wakeup()
    started = time.monotonic()
    assert not signal.wait(0.1)
    assert time.monotonic() - started >= 0.09
    threading.Timer(0.05, signal.set).start()
    started = time.monotonic()
    assert signal.wait(5.0)
    assert time.monotonic() - started < 2.0


def test_many_setters_never_raise_and_the_last_set_is_seen() -> None:
    signal = Wakeup()
    errors = []

    def setter() -> None:
        try:
            for _ in range(5000):
                signal.set()
        except Exception as exc:  # a set on a set signal must not raise
            errors.append(exc)

    threads = [threading.Thread(target=setter) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert signal.wait(0.0) and not signal.wait(0.0)
