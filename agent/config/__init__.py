"""The configuration: every key with its default and bounds, loading with overrides and validation,
typed read-only views of its sections.
"""
