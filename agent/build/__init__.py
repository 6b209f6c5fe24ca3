"""Building the configured engine: cache lookup, plain builds, the gated INT8 path (calibration),
and loading what was built.
"""
