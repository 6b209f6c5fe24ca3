"""Cancelling long work (the INT8 search, builds, calibration) from another thread or a signal:
the work is handed a cancel check and tests it at safe points between steps."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

from agent.util.errors import EXIT_OK, EdgeAgentError
from agent.util.progress import Listener

CancelCheck = Callable[[], bool]  # True once the work should stop (e.g. threading.Event().is_set)
_ambient = threading.local()


class Cancelled(EdgeAgentError):
    """The work was cancelled (a stop was asked for) before it finished; exit code 0, as the stop was asked for."""

    exit_code = EXIT_OK


def check(cancel: Optional[CancelCheck], what: str) -> None:
    """Raise Cancelled naming ``what`` when ``cancel`` says stop."""
    if cancel is not None and cancel():
        raise Cancelled(f"{what}: cancelled (a stop was asked for)")


def cancelling(listener: Optional[Listener], cancel: Optional[CancelCheck]) -> Optional[Listener]:
    """A progress listener that is also a cancel point: every progress step checks ``cancel``
    (then forwards to ``listener``)."""
    if cancel is None:
        return listener

    def listen(label: str, done: int, total: int, detail: str) -> None:
        check(cancel, label)
        if listener is not None:
            listener(label, done, total, detail)

    return listen


@contextmanager
def scope(cancel: Optional[CancelCheck]) -> Iterator[None]:
    """Run a block of work under ``cancel`` on this thread: ``ambient()`` returns it there (a
    background job's builds are cancelled by the job's owner without each caller passing it on)."""
    outer = getattr(_ambient, "cancel", None)
    _ambient.cancel = cancel
    try:
        yield
    finally:
        _ambient.cancel = outer


def ambient() -> Optional[CancelCheck]:
    """The cancel check of the enclosing ``scope`` on this thread, or None."""
    return getattr(_ambient, "cancel", None)
