"""The ``edge-agent`` command line: argument parsing and rendering; the work is done below."""
