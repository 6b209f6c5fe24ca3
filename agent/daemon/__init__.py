"""The daemon behind `edge-agent run`: supervision, the inference loop, engine swaps, scheduled
jobs, command handlers, event policy, systemd notify.
"""
