"""The stability–plasticity trade-off as a curve: task A after B against task B, one point
per λ (lesson 04, ``ewclab sweep --plot``, the sweep widget)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

from ewclab.plots.curves import MARKERS
from ewclab.plots.style import METHOD_COLOURS, METHOD_LABELS, OKABE_ITO, new_figure

__all__ = ["plot_pareto"]

#: How each method's curve is drawn: colour, marker, line style (readable without colour).
_LOOK = {
    "sgd": (METHOD_COLOURS["sgd"], "X", ""),
    "l2": (METHOD_COLOURS["l2"], MARKERS[1], "--"),
    "ewc": (METHOD_COLOURS["ewc"], MARKERS[0], "-"),
    "online-ewc": (OKABE_ITO["reddish_purple"], MARKERS[2], "-."),
}
_LABELS = {**METHOD_LABELS, "l2": "L2 toward the old weights", "online-ewc": "online EWC"}


def _check_curves(curves: object) -> dict[str, list[tuple[float, float, float]]]:
    """``{method: [(λ, acc_a, acc_b), ...]}`` sorted by λ, every number checked."""
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError(f"curves must be a non-empty dict method -> list of (λ, acc_a, acc_b), "
                         f"got {curves!r}")
    out = {}
    for method, points in curves.items():
        if method not in _LOOK:
            raise ValueError(f"curves' methods must be among {list(_LOOK)}, got {method!r}")
        if isinstance(points, (str, bytes)) or not isinstance(points, Sequence):
            raise ValueError(f"curves[{method!r}] must be a list of (λ, acc_a, acc_b), "
                             f"got {points!r}")
        checked = []
        for point in points:
            try:
                lam, a, b = (float(v) for v in point)
            except (TypeError, ValueError):
                raise ValueError(f"curves[{method!r}] must hold (λ, acc_a, acc_b) triples, "
                                 f"got {point!r}") from None
            if not (math.isfinite(lam) and lam >= 0 and 0 <= a <= 1 and 0 <= b <= 1):
                raise ValueError(f"curves[{method!r}]: need λ >= 0 and accuracies in [0, 1], "
                                 f"got {point!r}")
            checked.append((lam, a, b))
        out[method] = sorted(checked)
    return out


def plot_pareto(
    curves: Mapping[str, Sequence[tuple[float, float, float]]],
    tasks: tuple[str, str] = ("task A", "task B"),
    chance: float | None = None,
    fig: Figure | None = None,
    title: str | None = None,
) -> Figure:
    """Task-A accuracy after training B against task-B accuracy, one point per λ.

    Up and to the right is better: a point above and right of another is no worse on
    both tasks. Each method's points are joined in order of λ and labelled with their λ;
    plain SGD (λ = 0) is the plastic end of every curve.

    Parameters
    ----------
    curves : dict of str to list of (float, float, float)
        Method (``"sgd"``, ``"l2"``, ``"ewc"``, ``"online-ewc"``) -> ``(λ, acc_a, acc_b)``
        per run, accuracies as fractions (NaN-free: draw only finished runs, or the
        latest evaluation of unfinished ones).
    tasks : (str, str)
        The two tasks' names, for the axes.
    chance : float, optional
        Chance accuracy (e.g. 0.1), drawn as dotted lines on both axes.
    fig : Figure, optional
        A figure to clear and redraw into (live plots); a new one by default.
    title : str, optional
        Default: "Stability vs plasticity: one point per λ".

    Returns
    -------
    matplotlib.figure.Figure
    """
    data = _check_curves(curves)
    if chance is not None and not (isinstance(chance, (int, float)) and 0 <= chance <= 1):
        raise ValueError(f"chance must be a fraction in [0, 1] or None, got {chance!r}")
    fig = new_figure((6.4, 5.2), fig)
    ax = fig.subplots()
    labelled: set[tuple[float, float]] = set()  # one "λ=0" where the curves share SGD's point
    for method, points in sorted(data.items(), key=lambda item: item[0] == "sgd"):
        colour, marker, style = _LOOK[method]
        xs = [100 * b for _, _, b in points]
        ys = [100 * a for _, a, _ in points]
        ax.plot(xs, ys, color=colour, marker=marker, ls=style or "none", lw=2,
                ms=9 if method == "sgd" else 7, zorder=3 if method == "sgd" else 2,
                label=_LABELS[method])
        for k, ((lam, _, _), x, y) in enumerate(zip(points, xs, ys, strict=True)):
            if lam == 0 and (x, y) in labelled:
                continue
            labelled.add((x, y))
            left = method == "l2"  # L2 bends left, EWC climbs: labels on their outer sides
            ax.annotate(f"λ={lam:g}", (x, y), textcoords="offset points", fontsize=8,
                        xytext=(-6 if left else 6, 3 if k % 2 == 0 else -10),
                        ha="right" if left else "left", color=colour)
    if chance is not None:
        ax.axhline(100 * chance, color="0.45", ls=":", lw=1.2, label=f"chance ({100 * chance:g} %)")
        ax.axvline(100 * chance, color="0.45", ls=":", lw=1.2)
    ax.set_xlim(0, 101)
    ax.set_ylim(0, 101)
    ax.set_xlabel(f"{tasks[1]}: accuracy after training it (%)  → more plastic")
    ax.set_ylabel(f"{tasks[0]}: accuracy after {tasks[1]} (%)  → more stable")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize=9, framealpha=0.9)
    ax.set_title(title or "Stability vs plasticity: one point per λ")
    return fig
