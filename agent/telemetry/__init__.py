"""Power, thermal, clock and load telemetry: sysfs (INA3221, INA238, thermal zones, devfreq,
cpufreq), tegrastats, NVML and RAPL, sampled by a background thread with monotonic timestamps.

The daemon's entry points: :class:`Telemetry` (discover sources once, read snapshots),
:class:`Sampler` (the thread) and :func:`energy_over` (energy in a time window).
"""

from __future__ import annotations

from .energy import energy_over
from .monitor import Telemetry, telemetry_from_config
from .sampler import Sample, Sampler

__all__ = ["Telemetry", "telemetry_from_config", "Sampler", "Sample", "energy_over"]
