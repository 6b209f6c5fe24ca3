"""A device link whose wall clock is off by OFFSET_S seconds, in a process of its own.

Usage: clock_proc.py PORT OFFSET_S KEY_FILE. ``time.time`` is shifted before agent is imported
(as a Jetson booted without NTP would be); monotonic time is left alone. Serves ``status``,
prints 'ready' once connected, and runs until killed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def main() -> None:
    port, offset, key_file = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    real = time.time
    time.time = lambda: real() + offset  # type: ignore[assignment]

    from agent.mqtt.commands import CommandServer
    from agent.mqtt.keys import load_verifier
    from agent.mqtt.link import DeviceLink, Settings
    from agent.mqtt.messages import SequenceFile
    from agent.mqtt.outbox import Bounds, Outbox

    state = Path(key_file).parent / "clockdev"
    server = CommandServer(
        "clockdev", load_verifier("commands.key_file", key_file), {"status": lambda a, p: {"device_time": time.time()}}
    )
    settings = Settings("127.0.0.1", port, reconnect_min_s=0.1, reconnect_max_s=0.5)
    link = DeviceLink(
        settings,
        "clockdev",
        Outbox(state / "outbox.sqlite", Bounds(1000, 10**7, 1e9)),
        SequenceFile(state / "seq"),
        server,
    )
    link.start()
    while not link.connected:
        time.sleep(0.02)
    time.sleep(0.3)  # subscribed to its command topics
    print("ready", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
