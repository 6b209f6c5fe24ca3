"""Engines on disk: the content-addressed engine cache and what identifies an engine (key, precision served, label)."""
