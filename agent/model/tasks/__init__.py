"""Task-specific decoding of model outputs into results."""
