"""sd_notify over a real unix datagram socket: READY, STATUS, WATCHDOG pacing, WATCHDOG_USEC."""

from __future__ import annotations

import os
import time

from agent.daemon.sdnotify import Notifier, WatchdogPacer, socket_address, watchdog_interval_s


def test_ready_status_and_watchdog_arrive_as_datagrams(notify_socket):
    notifier = Notifier({"NOTIFY_SOCKET": notify_socket.address})
    assert notifier.ready("serving onnxruntime fp32")
    assert notifier.status("rebuilding int8")
    assert notifier.watchdog()
    notifier.close()
    messages = [m for _, m in notify_socket.collect(0.3)]
    assert messages == ["READY=1\nSTATUS=serving onnxruntime fp32", "STATUS=rebuilding int8", "WATCHDOG=1"]


def test_abstract_socket_address(tmp_path):
    from tests.daemon.conftest import NotifyListener

    listener = NotifyListener(f"@edge-agent-test-{os.getpid()}-{time.monotonic_ns()}")
    try:
        notifier = Notifier({"NOTIFY_SOCKET": listener.address})
        assert notifier.address.startswith("\0")
        assert notifier.send(STATUS="abstract")
        assert [m for _, m in listener.collect(0.3)] == ["STATUS=abstract"]
    finally:
        listener.close()


def test_without_notify_socket_nothing_is_sent():
    notifier = Notifier({})
    assert not notifier.enabled
    assert not notifier.ready("x")


def test_a_vanished_socket_is_counted_not_raised(tmp_path):
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert not notifier.watchdog()
    assert notifier.failures == 1


def test_socket_address_forms():
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@/org/freedesktop/systemd1/notify/1") == "\0/org/freedesktop/systemd1/notify/1"


def test_watchdog_interval_honours_usec_and_pid():
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}) == 2.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, pid=4242) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval_s({}) is None


def test_pacer_sends_at_most_once_per_half_interval():
    now = [100.0]
    sent = []
    pacer = WatchdogPacer(lambda: sent.append(now[0]) or True, interval_s=2.0, clock=lambda: now[0])
    for _ in range(50):  # 50 inferences 0.25 s apart: 12.5 s of progress
        pacer.progress()
        now[0] += 0.25
    assert sent == [100.0 + i for i in range(13)]  # one keep-alive per second (half the interval)


def test_pacer_sends_nothing_without_progress():
    now = [0.0]
    sent = []
    pacer = WatchdogPacer(lambda: sent.append(now[0]) or True, interval_s=1.0, clock=lambda: now[0])
    pacer.progress()
    now[0] += 60.0  # a minute without any inference
    assert sent == [0.0]


def test_pacer_cadence_on_a_real_socket(notify_socket):
    notifier = Notifier({"NOTIFY_SOCKET": notify_socket.address})
    stamps = []

    def send() -> bool:
        stamps.append(time.monotonic())
        return notifier.watchdog()

    pacer = WatchdogPacer(send, interval_s=0.2)
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        pacer.progress()
        time.sleep(0.01)
    notify_socket.collect(0.2)
    assert len(notify_socket.lines("WATCHDOG")) == len(stamps) == pacer.sent
    assert 8 <= len(stamps) <= 11  # one per 0.1 s over 1 s
    assert min(b - a for a, b in zip(stamps, stamps[1:])) >= 0.1


def test_pacer_disabled_without_interval():
    pacer = WatchdogPacer(lambda: True, None)
    assert not pacer.enabled
    pacer.progress()
    assert pacer.sent == 0


def test_a_full_receiver_queue_never_blocks_the_sender(notify_socket):
    notifier = Notifier({"NOTIFY_SOCKET": notify_socket.address})
    started = time.monotonic()
    results = [notifier.watchdog() for _ in range(5000)]  # nobody reads: the queue fills up
    assert time.monotonic() - started < 2.0
    assert results[0] and not all(results) and notifier.failures > 0
