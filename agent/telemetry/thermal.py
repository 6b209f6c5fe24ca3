"""Thermal zones: /sys/class/thermal/thermal_zone*/{type,temp} (millidegrees Celsius).

A zone that cannot be read, or reads -256 C (what Jetson firmware reports for a sensor that has
no reading, e.g. a power-gated GPU), is ``None``: never a number that is not a temperature.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from agent.telemetry.sysfs import SysfsRoot

NO_READING_C = -256.0


def celsius(value: Optional[float]) -> Optional[float]:
    """Degrees C from a value that tegrastats already gives in C; None for the no-reading marker."""
    if value is None or value <= NO_READING_C + 0.5:
        return None
    return value


def discover_zones(fs: SysfsRoot) -> List[Tuple[str, str]]:
    """(zone name, temp file) for every zone, names made unique where types repeat."""
    zones = []
    seen: Dict[str, int] = {}
    for zone in fs.glob("/sys/class/thermal/thermal_zone*"):
        name = fs.text(f"{zone}/type")
        if not name or not fs.exists(f"{zone}/temp"):
            continue
        seen[name] = seen.get(name, 0) + 1
        zones.append((name if seen[name] == 1 else f"{name}#{seen[name]}", f"{zone}/temp"))
    return zones


def read_zones(fs: SysfsRoot, zones: List[Tuple[str, str]]) -> Dict[str, Optional[float]]:
    temps: Dict[str, Optional[float]] = {}
    for name, path in zones:
        milli = fs.number(path)
        temps[name] = celsius(round(milli / 1000.0, 3)) if milli is not None else None
    return temps
