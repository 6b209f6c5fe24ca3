"""systemd's sd_notify protocol in plain Python: datagrams to $NOTIFY_SOCKET.

READY=1 once the daemon serves, STATUS= lines for ``systemctl status``, and WATCHDOG=1 sent from
the inference loop's progress (never from a timer): ``WatchdogPacer.progress()`` is called after
each inference and sends at most one keep-alive per half watchdog interval, so a stuck loop stops
the keep-alives and systemd restarts the service.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Callable, Mapping, Optional

log = logging.getLogger(__name__)


def socket_address(value: str) -> str:
    """$NOTIFY_SOCKET as a connectable address: a leading '@' names an abstract socket."""
    return "\0" + value[1:] if value.startswith("@") else value


def watchdog_interval_s(environ: Mapping[str, str], pid: Optional[int] = None) -> Optional[float]:
    """The watchdog interval systemd asks for, or None when it asks for none (or for another pid)."""
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    wanted_pid = environ.get("WATCHDOG_PID", "")
    if wanted_pid and wanted_pid.isdigit() and int(wanted_pid) != (pid if pid is not None else os.getpid()):
        return None
    return int(usec) / 1_000_000.0


class Notifier:
    """Sends notification datagrams; without $NOTIFY_SOCKET every call is a no-op."""

    def __init__(self, environ: Optional[Mapping[str, str]] = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        self.address = socket_address(path) if path else ""
        self._sock: Optional[socket.socket] = None
        self.failures = 0

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, **fields: object) -> bool:
        """One datagram of KEY=VALUE lines, e.g. send(READY=1, STATUS='serving')."""
        if not self.address:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode("utf-8")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)  # a full receiver queue must never stall inference
            self._sock.sendto(message, self.address)
            return True
        except OSError as exc:
            self.failures += 1
            if self.failures == 1:
                log.warning("sd_notify to %s failed: %s", self.address.replace("\0", "@"), exc)
            return False

    def ready(self, status: str) -> bool:
        return self.send(READY=1, STATUS=status)

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    def stopping(self, status: str) -> bool:
        return self.send(STOPPING=1, STATUS=status)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class WatchdogPacer:
    """WATCHDOG=1 driven by progress: at most one keep-alive per half interval, none without progress."""

    def __init__(
        self, send: Callable[[], bool], interval_s: Optional[float], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.send = send
        self.period = interval_s / 2.0 if interval_s else None
        self.clock = clock
        self.last_sent: Optional[float] = None
        self.sent = 0

    @property
    def enabled(self) -> bool:
        return self.period is not None

    def progress(self) -> None:
        """Call after each unit of real work (an inference)."""
        if self.period is None:
            return
        now = self.clock()
        if self.last_sent is None or now - self.last_sent >= self.period:
            if self.send():
                self.sent += 1
            self.last_sent = now
