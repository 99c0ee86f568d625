"""Lesson 07's figures: accuracy per scenario beside a published table, a confusion matrix,
and importance maps (EWC's Fisher, SI's and MAS's Ω) side by side."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.colors import LogNorm

from ewclab.plots.fisher_maps import _fisher_arrays, _heatmap, _input_view, _weight_names
from ewclab.plots.style import CMAP, OKABE_ITO, TASK_COLOURS, WIDTH, new_figure

__all__ = ["plot_confusion", "plot_importance_maps", "plot_scenario_accuracy"]

_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def plot_scenario_accuracy(
    ours: Mapping[str, Mapping[str, float]],
    published: Mapping[str, Mapping[str, float]] | None = None,
    chance: Mapping[str, float] | None = None,
):
    """Final average accuracy per method, one panel per scenario, with published values as
    black outlined markers and a chance line (lesson 07).

    Parameters
    ----------
    ours : dict of scenario to (dict of method to accuracy in [0, 1])
    published : dict of scenario to (dict of method to accuracy in [0, 1]), optional
        Drawn beside our bar of the same method (methods we did not run are skipped).
    chance : dict of scenario to float, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(ours, Mapping) or not ours:
        raise TypeError("ours must be a non-empty dict scenario -> {method: accuracy}")
    published, chance = dict(published or {}), dict(chance or {})
    fig = new_figure((WIDTH, 3.6))
    axes = fig.subplots(1, len(ours), sharey=True, squeeze=False)[0]
    for ax, (scenario, accs) in zip(axes, ours.items(), strict=True):
        methods = list(accs)
        x = np.arange(len(methods))
        values = [100 * float(accs[m]) for m in methods]
        colours = [TASK_COLOURS[k % len(TASK_COLOURS)] for k in range(len(methods))]
        ax.bar(x, values, color=colours, alpha=0.85, label="ours")
        for k, v in enumerate(values):
            ax.text(x[k], v + 1.5, f"{v:.0f}", ha="center", fontsize=8)
        paper = published.get(scenario, {})
        shown = [(k, 100 * float(paper[m])) for k, m in enumerate(methods) if m in paper]
        if shown:
            ax.scatter([k for k, _ in shown], [v for _, v in shown], marker="D", s=40,
                       facecolor="white", edgecolor="black", zorder=3, label="published")
        if scenario in chance:
            ax.axhline(100 * chance[scenario], color=OKABE_ITO["black"], ls=":", lw=1,
                       label="chance")
        ax.set_xticks(x, methods, rotation=30)
        ax.set_title(f"{scenario}-incremental", fontsize=10)
        ax.set_ylim(0, 108)
    axes[0].set_ylabel("final average accuracy (%)")
    axes[-1].legend(fontsize=8, loc="upper left", framealpha=0.9)
    fig.suptitle("Split MNIST, five tasks: accuracy after the last task, averaged over tasks")
    return fig


def plot_confusion(
    matrices: Mapping[str, np.ndarray],
    highlight: Sequence[int] = (),
):
    """Row-normalised confusion matrices side by side (true class down, predicted across),
    the ``highlight`` classes' columns outlined (lesson 07).

    Parameters
    ----------
    matrices : dict of str to (C, C) array of counts
        One panel each, titled by its key.
    highlight : sequence of int
        Classes to outline (e.g. the last task's).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(matrices, Mapping) or not matrices:
        raise TypeError("matrices must be a non-empty dict name -> (C, C) count matrix")
    fig = new_figure((WIDTH, 3.7))
    axes = fig.subplots(1, len(matrices), squeeze=False)[0]
    for ax, (name, cm) in zip(axes, matrices.items(), strict=True):
        cm = np.asarray(cm, dtype=float)
        if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or (cm < 0).any():
            raise ValueError(f"matrices[{name!r}] must be a square count matrix, got {cm.shape}")
        rows = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        im = ax.imshow(rows, cmap=CMAP, vmin=0, vmax=1, interpolation="nearest")
        for k in highlight:
            ax.add_patch(_column(k, cm.shape[0]))
        c = cm.shape[0]
        ax.set_xticks(range(c))
        ax.set_yticks(range(c))
        ax.set_xlabel("predicted class")
        ax.set_title(name, fontsize=10)
    axes[0].set_ylabel("true class")
    fig.colorbar(im, ax=list(axes), shrink=0.85, label="share of the true class's test images")
    return fig


def _column(k: int, c: int):
    from matplotlib.patches import Rectangle

    return Rectangle((k - 0.5, -0.5), 1, c, fill=False, edgecolor=OKABE_ITO["vermillion"], lw=2)


def plot_importance_maps(importances: Mapping[str, Mapping[str, object]]):
    """Each importance's first weight layer summed onto the 28×28 input pixels, side by
    side, each on its own log colour scale (Fisher, SI's Ω and MAS's Ω have different
    units), lesson 07.

    Parameters
    ----------
    importances : dict of str to (dict of parameter name to tensor or array)
        E.g. ``{"EWC: Fisher": history.importance[task], ...}`` of networks whose first
        weight layer reads 28×28 images (an MLP).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        A first weight layer that does not read 28×28 pixels.
    """
    if not isinstance(importances, Mapping) or not importances:
        raise TypeError("importances must be a non-empty dict label -> importance dict")
    fig = new_figure((WIDTH, 3.5))
    axes = fig.subplots(1, len(importances), squeeze=False)[0]
    for ax, (label, importance) in zip(axes, importances.items(), strict=True):
        arrays = _fisher_arrays(importance)
        name = _weight_names(arrays)[0]
        a = arrays[name]
        if a.ndim != 2 or a.shape[1] % 784:
            raise ValueError(f"{label}: first weight layer {name!r} of shape {a.shape} does "
                             "not read 28×28 pixels")
        view = _input_view(name, a)
        positive = view.img[view.img > 0]
        vmax = float(positive.max()) if positive.size else 1.0
        norm = LogNorm(vmin=vmax * 1e-3, vmax=vmax)
        _heatmap(fig, ax, view._replace(title=f"{label}\nsummed onto input pixels"), norm=norm,
                 label="importance (log scale)")
    fig.suptitle("Which input pixels' weights each method protects (first layer, task 1)")
    return fig
