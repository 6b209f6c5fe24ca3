"""Who this machine is: the facts an engine is tied to and every measurement is labeled with.

Readers take a ``root`` so tests and copies taken from a device can stand in for ``/``.
"""

from __future__ import annotations

import platform
import re
from pathlib import Path
from typing import Any, Dict, Optional

from agent.util.fileio import sha256_bytes

_L4T = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)")


def _read(root: str, relative: str) -> Optional[str]:
    try:
        return (Path(root) / relative.lstrip("/")).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def device_model(root: str = "/") -> Optional[str]:
    """The board's name from the device tree (Jetson: 'NVIDIA Jetson AGX Orin Developer Kit')."""
    text = _read(root, "proc/device-tree/model")
    return text.strip("\x00\n ") if text else None


def l4t_release(root: str = "/") -> Optional[str]:
    """'35.4.1' from /etc/nv_tegra_release ('# R35 (release), REVISION: 4.1, ...'), else None."""
    text = _read(root, "etc/nv_tegra_release")
    match = _L4T.search(text or "")
    return f"{match.group(1)}.{match.group(2)}" if match else None


def cpu_identity(root: str = "/") -> Dict[str, Any]:
    """CPU model and a short hash of its feature flags (ONNX Runtime's kernels depend on them)."""
    text = _read(root, "proc/cpuinfo") or ""
    model = flags = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if not model and key in ("model name", "hardware", "cpu part"):
            model = value.strip()
        if not flags and key in ("flags", "features"):
            flags = " ".join(sorted(value.split()))
    return {
        "model": model or platform.processor() or platform.machine(),
        "flags_sha256": sha256_bytes(flags.encode())[:16] if flags else None,
    }


def identity(root: str = "/") -> Dict[str, Any]:
    """The machine facts that go with every report."""
    return {
        "hostname": platform.node(),
        "machine": platform.machine(),
        "device_model": device_model(root),
        "l4t": l4t_release(root),
        "cpu": cpu_identity(root)["model"],
    }
