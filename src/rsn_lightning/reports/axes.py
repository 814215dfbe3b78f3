"""The axes the figures draw on and how they are written as PNG files (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path


def axis_or_new(ax, figsize=(7, 4)):
    """``ax``, or the axis of a new figure (matplotlib's Agg backend unless one is chosen already)."""
    import matplotlib

    if ax is None:
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        ax = plt.subplots(figsize=figsize)[1]
    return ax


def legend_if_drawn(ax, **kwargs):
    """The axis's legend, when anything labelled was drawn on it."""
    if ax.get_legend_handles_labels()[0]:  # nothing drawn (no job records the value): no empty legend
        ax.legend(fontsize="small", **kwargs)


def save_png(ax, path) -> Path:
    """Write the axis's figure to ``path`` (its folder made), close it and return ``path``."""
    import matplotlib.pyplot as plt

    fig = ax.figure
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
