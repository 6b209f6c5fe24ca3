"""The ``edge-agent`` command line."""

from .main import main

__all__ = ["main"]
