"""Figures for the lab: accuracy curves, accuracy matrix, λ trade-off, Fisher maps, 2-D toy.

Every function takes plain data (a History or its ``to_dict()``, Fisher dicts, lists of
results) and returns a :class:`matplotlib.figure.Figure` built without pyplot, so it is
safe to draw from a worker thread and never opens a window. In a notebook, display the
returned figure; elsewhere call ``fig.savefig("out.png")``.

The figures live in one module per idea: :mod:`~ewclab.plots.curves` (accuracy, accuracy
matrix, trade-off), :mod:`~ewclab.plots.fisher_maps` (Fisher heatmaps),
:mod:`~ewclab.plots.toy` (the 2-D toy) and :mod:`~ewclab.plots.style` (palette and sizes).
"""

from ewclab.plots.curves import (
    plot_accuracy,
    plot_accuracy_matrix,
    plot_accuracy_overlay,
    plot_tradeoff,
)
from ewclab.plots.fisher_maps import plot_fisher, plot_fisher_compare, plot_fisher_layer
from ewclab.plots.style import CMAP, METHOD_COLOURS, METHOD_LABELS, OKABE_ITO, TASK_COLOURS
from ewclab.plots.toy import plot_laplace, plot_toy, plot_toy_tradeoff

__all__ = [
    "CMAP",
    "METHOD_COLOURS",
    "METHOD_LABELS",
    "OKABE_ITO",
    "TASK_COLOURS",
    "plot_accuracy",
    "plot_accuracy_matrix",
    "plot_accuracy_overlay",
    "plot_fisher",
    "plot_fisher_compare",
    "plot_fisher_layer",
    "plot_laplace",
    "plot_toy",
    "plot_toy_tradeoff",
    "plot_tradeoff",
]
