"""The daemon's ``dropped`` count never counts a message twice (issue 15, fault soak): messages that
could not be stored (a real file size limit, as test_disk_full.py) move into the outbox's persistent
count once writes work again; telemetry read at that very moment sees each of them in one count only."""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, threading, time
from agent.mqtt.link import DeviceLink, Settings
from agent.mqtt.messages import SequenceFile
from agent.mqtt.outbox import Bounds, Outbox
from tests.mqtt.brokers import free_port

seen = []


class ReadAfterRecording(Outbox):
    # The real outbox; right after the lost messages are recorded, another thread reads the
    # telemetry count (as the daemon's main thread may at any moment) while this one waits for it.
    def record_dropped(self, lost):
        super().record_dropped(lost)
        reader = threading.Thread(target=lambda: seen.append(link.dropped_total()))
        reader.start()
        reader.join(0.5)
        readers.append(reader)


readers = []
folder = sys.argv[1]
outbox = ReadAfterRecording(folder + "/outbox.sqlite", Bounds(10000, 10 ** 8, 1e9))
link = DeviceLink(Settings("127.0.0.1", free_port()), "dev", outbox, SequenceFile(folder + "/mqtt-seq"))
link.start()  # no broker: the publisher thread runs its housekeeping (the announcement) all the same
unlimited = resource.RLIM_INFINITY
resource.setrlimit(resource.RLIMIT_FSIZE, (1, unlimited))  # no write fits
for n in range(20):
    link.publish_event("config_reloaded", "info", "lost")
resource.setrlimit(resource.RLIMIT_FSIZE, (unlimited, unlimited))
deadline = time.monotonic() + 10
while link.outbox.dropped < 20 and time.monotonic() < deadline:
    time.sleep(0.05)
for reader in readers:
    reader.join(5)
print(json.dumps(dict(seen=seen, dropped=link.dropped_total())))
link.stop(1.0)
"""


def test_telemetry_never_counts_an_unstored_message_twice(tmp_path):
    out = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["dropped"] == 20 and result["seen"], result
    assert max(result["seen"]) == 20, result  # read while they moved: in one count, not in both
