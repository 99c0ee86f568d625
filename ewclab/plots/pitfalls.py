"""Figures of lesson 06 (what goes wrong): SGD's stability on the penalty, grouped bars of
measured numbers, and log-log error curves. Plain data in, a pyplot-free Figure out."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ewclab.plots.style import TASK_COLOURS, WIDTH, new_figure

__all__ = ["plot_bars", "plot_loglog", "plot_stability"]

MARKERS = ("o", "s", "^", "D", "v", "P")
HATCHES = ("", "//", "..", "xx", "\\\\", "++")  # bars told apart without colour


def _series(series: object, name: str) -> dict[str, np.ndarray]:
    if not isinstance(series, Mapping) or not series:
        raise ValueError(f"{name} must be a non-empty dict of label -> values, got {series!r}")
    out = {}
    for label, values in series.items():
        a = np.asarray(values, dtype=float)
        if a.ndim < 1 or a.size == 0 or not np.isfinite(a).all():
            raise ValueError(f"{name}[{label!r}] must be finite numbers, got {values!r}")
        out[str(label)] = a
    return out


def plot_stability(
    lr_h: Sequence[float],
    rates: Mapping[str, Sequence[float]],
    paths: Mapping[str, Sequence[float]],
    bound: float,
) -> Figure:
    """Left: the contraction rate per step against lr·h, one curve per momentum, with the
    bound 2(1 + μ) marked; right: |x_t| of one weight on the penalty, one curve per lr·h.

    Parameters
    ----------
    lr_h : sequence of float
        The x axis of the left panel.
    rates : dict of str to sequence of float
        Label (e.g. ``"μ = 0.9"``) → rate at each ``lr_h``.
    paths : dict of str to sequence of float
        Label (e.g. ``"lr·h = 0.95 × bound"``) → x_0, x_1, ... (distance from the anchor).
    bound : float
        2(1 + μ) of the lab's momentum, drawn as a vertical line.
    """
    x = np.asarray(lr_h, dtype=float)
    curves, trajectories = _series(rates, "rates"), _series(paths, "paths")
    if any(c.shape != x.shape for c in curves.values()):
        raise ValueError("every rates curve must have one value per lr_h")
    fig = new_figure((WIDTH, 3.9))
    left, right = fig.subplots(1, 2)
    for k, (label, c) in enumerate(curves.items()):
        left.plot(x, c, color=TASK_COLOURS[k], marker=MARKERS[k], markevery=max(1, len(x) // 12),
                  lw=2, label=label)
    left.axhline(1.0, color="0.45", ls=":", lw=1.5, label="rate 1: no longer shrinks")
    left.axvline(bound, color="0.2", ls="--", lw=1.2, label=f"bound 2(1 + μ) = {bound:g}")
    left.set_xlabel("lr · curvature (lr·λ·F of a weight)")
    left.set_ylabel("factor per step (spectral radius)")
    left.set_ylim(0, 1.6)
    left.set_title("Heavy-ball SGD on one quadratic")
    left.legend(fontsize=8, loc="upper left")
    for k, (label, path) in enumerate(trajectories.items()):
        right.semilogy(np.abs(path) + 1e-300, color=TASK_COLOURS[k], marker=MARKERS[k],
                       markevery=max(1, len(path) // 10), lw=1.5, label=label)
    right.set_ylim(1e-5, 1e5)  # a growing path leaves through the top
    right.set_xlabel("step")
    right.set_ylabel("|θ − θ*| (log scale, clipped at 10⁵)")
    right.set_title("One weight pulled by its spring alone")
    right.legend(fontsize=8, loc="lower left")
    return fig


def plot_bars(
    groups: Mapping[str, Mapping[str, float]],
    ylabel: str,
    title: str,
    log: bool = False,
    chance: float | None = None,
) -> Figure:
    """Grouped bars: one group per outer key, one bar (colour and hatch) per inner key.

    Parameters
    ----------
    groups : dict of str to dict of str to float
        e.g. ``{"5 epochs": {"empirical": 90.1, "exact": 107.7}, "50 epochs": {...}}``;
        every group has the same inner keys.
    ylabel, title : str
    log : bool
        Log-scale y axis (values must be > 0).
    chance : float, optional
        A dotted horizontal line at this value (e.g. 10 for 10 % accuracy).
    """
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError(f"groups must be a non-empty dict of dicts, got {groups!r}")
    inner = [list(g) for g in groups.values()]
    if not inner[0] or any(keys != inner[0] for keys in inner):
        raise ValueError("every group must have the same, non-empty bar labels")
    values = np.array([[float(g[k]) for k in inner[0]] for g in groups.values()])
    if not np.isfinite(values).all() or (log and (values <= 0).any()):
        raise ValueError(f"bar values must be finite{' and > 0 on a log axis' if log else ''}")
    fig = new_figure((WIDTH * 0.62, 3.8))
    ax = fig.add_subplot()
    width = 0.8 / len(inner[0])
    centres = np.arange(len(groups))
    for k, label in enumerate(inner[0]):
        xs = centres + (k - (len(inner[0]) - 1) / 2) * width
        bars = ax.bar(xs, values[:, k], width, color=TASK_COLOURS[k], hatch=HATCHES[k],
                      edgecolor="white", label=label)
        ax.bar_label(bars, fmt="%.3g", fontsize=8, padding=2)
    if chance is not None:
        ax.axhline(float(chance), color="0.45", ls=":", lw=1.5, label=f"chance ({chance:g})")
    if log:
        ax.set_yscale("log")
    else:
        ax.set_ylim(0, values.max() * 1.15)
    ax.set_xticks(centres, list(groups))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def plot_loglog(
    x: Sequence[float],
    series: Mapping[str, Sequence[Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str,
    guide: tuple[str, float] | None = None,
) -> Figure:
    """Each series as its mean (line and markers) and its single values (dots), on log-log
    axes; ``guide = (label, slope)`` adds a dashed power law x**slope through the first
    series' first mean.

    Parameters
    ----------
    x : sequence of float
        The x values (> 0).
    series : dict of str to sequence of sequence of float
        Label → for each x, the repeated measurements (> 0).
    """
    xs = np.asarray(x, dtype=float)
    if xs.ndim != 1 or not (xs > 0).all():
        raise ValueError(f"x must be positive numbers, got {x!r}")
    fig = new_figure((WIDTH * 0.62, 3.8))
    ax = fig.add_subplot()
    first_mean = None
    for k, (label, rows) in enumerate(_series_rows(series, len(xs)).items()):
        means = np.array([np.mean(r) for r in rows])
        first_mean = means[0] if first_mean is None else first_mean
        ax.loglog(xs, means, color=TASK_COLOURS[k], marker=MARKERS[k], lw=2, label=label)
        for xv, r in zip(xs, rows, strict=True):
            ax.scatter([xv] * len(r), r, color=TASK_COLOURS[k], s=10, alpha=0.5)
    if guide is not None:
        label, slope = guide
        ax.loglog(xs, first_mean * (xs / xs[0]) ** float(slope), color="0.3", ls="--", lw=1.2,
                  label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def _series_rows(series: object, n: int) -> dict[str, list[np.ndarray]]:
    if not isinstance(series, Mapping) or not series:
        raise ValueError(f"series must be a non-empty dict, got {series!r}")
    out = {}
    for label, rows in series.items():
        arrays = [np.atleast_1d(np.asarray(r, dtype=float)) for r in rows]
        if len(arrays) != n or any(a.size == 0 or not (a > 0).all() or
                                   not all(math.isfinite(v) for v in a) for a in arrays):
            raise ValueError(f"series[{label!r}] must hold {n} lists of positive numbers")
        out[str(label)] = arrays
    return out
