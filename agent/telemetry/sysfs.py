"""Reading sysfs-shaped trees under a root folder ('/' on a device, a copy or fixture in tests).

Every reader returns None for a file that is missing, unreadable or not a number: sysfs content
is input like any other and never raises out of telemetry.
"""

from __future__ import annotations

import glob
import os
from typing import Dict, List, Optional


class SysfsRoot:
    """Paths are given as on the device ('/sys/class/thermal'); they resolve under ``root``."""

    def __init__(self, root: str = "/") -> None:
        self.root = os.path.abspath(root)
        self._paths: Dict[str, str] = {}

    def path(self, device_path: str) -> str:
        full = self._paths.get(device_path)
        if full is None:
            full = self._paths[device_path] = os.path.join(self.root, device_path.lstrip("/"))
        return full

    def glob(self, pattern: str) -> List[str]:
        """Matching device paths (as on the device), sorted naturally (hwmon2 before hwmon10)."""
        found = glob.glob(self.path(pattern))
        device_paths = ["/" + os.path.relpath(p, self.root) for p in found]
        return sorted(device_paths, key=natural_key)

    def exists(self, device_path: str) -> bool:
        return os.path.exists(self.path(device_path))

    def text(self, device_path: str) -> Optional[str]:
        """The file's content, stripped; unbuffered (sysfs files are small, and this runs 10x a second)."""
        try:
            fd = os.open(self.path(device_path), os.O_RDONLY)
        except OSError:
            return None
        try:
            data = os.read(fd, 65536)
        except OSError:
            return None
        finally:
            os.close(fd)
        return data.decode("utf-8", "replace").strip("\x00\n\t ")

    def number(self, device_path: str) -> Optional[float]:
        """The first word of the file as a number ('32760 ma' -> 32760.0), else None."""
        text = self.text(device_path)
        if not text:
            return None
        try:
            return float(text.split()[0])
        except ValueError:
            return None


def natural_key(text: str) -> List[object]:
    """Sort key that orders embedded numbers by value."""
    parts: List[object] = []
    number = ""
    for char in text:
        if char.isdigit():
            number += char
            continue
        if number:
            parts.append(int(number))
            number = ""
        parts.append(char)
    if number:
        parts.append(int(number))
    return [(0, p) if isinstance(p, int) else (1, p) for p in parts]
