"""A device link in a process of its own, for the kill -9 test.

Usage: publisher_proc.py STATE_DIR PORT COUNT. Stores COUNT build reports (printing each seq),
prints 'stored', then prints 'drained' once the outbox is empty, and waits to be killed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from agent.mqtt.link import DeviceLink, Settings
from agent.mqtt.messages import SequenceFile
from agent.mqtt.outbox import Bounds, Outbox


def main() -> None:
    state, port, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    settings = Settings("127.0.0.1", port, reconnect_min_s=0.1, reconnect_max_s=0.5)
    outbox = Outbox(state / "outbox.sqlite", Bounds(100000, 10**8, 1e6))
    link = DeviceLink(settings, "crashdev", outbox, SequenceFile(state / "seq"))
    link.start()
    for i in range(count):
        print(link.publish_report("build", {"n": i}), flush=True)
    print("stored", flush=True)
    while outbox.count:
        time.sleep(0.02)
    print("drained", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
