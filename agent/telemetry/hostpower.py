"""CPU power on x86 machines: RAPL powercap (NVIDIA GPUs: agent.telemetry.nvml).

RAPL exposes a cumulative energy counter (``energy_uj``) that wraps at ``max_energy_range_uj``
(Linux Documentation/power/powercap/powercap.rst); power is the counter's difference between two
reads over their monotonic time difference, and the reader keeps an unwrapped running total in mJ
(``energy_mj``) that energy per inference takes differences of.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Optional, Tuple

from agent.telemetry.sysfs import SysfsRoot


def rapl_delta_uj(previous: float, current: float, wrap_uj: Optional[float]) -> Optional[float]:
    """Energy between two counter reads, across one wrap; None when it cannot be told."""
    if current >= previous:
        return current - previous
    return current + wrap_uj - previous if wrap_uj else None


class RaplReader:
    """Package-level RAPL domains (intel-rapl:N, not their sub-zones), as mW since the last read."""

    def __init__(self, fs: SysfsRoot, clock: Callable[[], float] = time.monotonic) -> None:
        self.fs = fs
        self.clock = clock
        self.domains: List[Tuple[str, str, Optional[float]]] = []
        for zone in fs.glob("/sys/class/powercap/intel-rapl:[0-9]*"):
            if zone.count(":") != 1 or fs.number(f"{zone}/energy_uj") is None:
                continue
            name = f"RAPL_{(fs.text(f'{zone}/name') or zone.rsplit('/', 1)[-1]).upper()}"
            self.domains.append((name, f"{zone}/energy_uj", fs.number(f"{zone}/max_energy_range_uj")))
        self._last: Dict[str, Tuple[float, float]] = {}
        self.energy_mj: Dict[str, float] = {}  # unwrapped, since this reader's first read

    def read_mw(self) -> Dict[str, Optional[float]]:
        now = self.clock()
        out: Dict[str, Optional[float]] = {}
        for name, path, wrap in self.domains:
            energy = self.fs.number(path)
            previous = self._last.get(name)
            out[name] = None
            if energy is not None:
                if previous is not None and now > previous[0]:
                    delta = rapl_delta_uj(previous[1], energy, wrap)
                    out[name] = delta / 1000.0 / (now - previous[0]) if delta is not None else None
                    if delta is None:  # a counter that cannot be unwrapped ends the running total
                        self.energy_mj.pop(name, None)
                    elif name in self.energy_mj:
                        self.energy_mj[name] += delta / 1000.0
                elif previous is None:
                    self.energy_mj[name] = 0.0
                self._last[name] = (now, energy)
        return out
