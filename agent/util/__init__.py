"""Shared pieces every area uses: error types and exit codes, atomic files and hashes, progress,
child processes, files inside installed packages, the declarative schema, device identity,
statistics.
"""
