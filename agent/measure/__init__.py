"""Measurement: the benchmark (latency, throughput, stability, energy) and the context every figure carries."""
