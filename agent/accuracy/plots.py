"""Pictures for people: the confusion matrix as a PNG. matplotlib is optional (pip install
edge-agent[plots]); without it, asking for a plot says so in one sentence."""

from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np

from agent.util.errors import MissingDependency
from agent.util.fileio import atomic_write_bytes


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend; MissingDependency in one sentence without it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependency(
            "the confusion-matrix plot needs matplotlib, which is not installed: pip install matplotlib"
        ) from None
    return plt


def confusion_png(matrix: Sequence[Sequence[int]], labels: Sequence[str], path: str, title: str = "") -> str:
    """Write the matrix (rows truth, columns prediction) with counts in the cells; returns ``path``.
    Cells are shaded by the row's share, so a class's recall reads along its row."""
    plt = pyplot()
    counts = np.asarray(matrix, dtype=np.int64)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=np.float64), where=totals > 0)
    size = max(4.0, 0.6 * len(labels) + 2.0)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    axes.set_xticks(range(len(labels)))
    axes.set_yticks(range(len(labels)))
    axes.set_xticklabels(labels, rotation=45, ha="right")
    axes.set_yticklabels(labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("truth")
    for (row, col), value in np.ndenumerate(counts):
        axes.text(col, row, str(value), ha="center", va="center", color="white" if shares[row, col] > 0.5 else "black")
    if title:
        axes.set_title(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    return path
