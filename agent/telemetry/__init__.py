"""Power, thermal, clock and load telemetry: sysfs (INA3221, INA238, thermal zones, devfreq,
cpufreq), tegrastats, NVML and RAPL, sampled by a background thread with monotonic timestamps.

The daemon's entry points: ``monitor.Telemetry`` (discover sources once, read snapshots),
``sampler.Sampler`` (the thread) and ``energy.energy_over`` (energy in a time window).
"""
