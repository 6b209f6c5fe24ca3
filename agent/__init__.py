"""edge-agent: build, run, measure and watch vision models on NVIDIA Jetson-class devices."""

__version__ = "0.1.0"
