"""Shared look of the lab's figures: colour-blind-safe palette, sizes, a pyplot-free figure."""

from __future__ import annotations

import math
from collections.abc import Mapping

from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

# Okabe & Ito (2008), a palette that stays distinguishable under colour-vision deficiency.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
TASK_COLOURS = tuple(
    OKABE_ITO[c]
    for c in ("blue", "vermillion", "bluish_green", "reddish_purple", "orange", "sky_blue", "black")
)
METHOD_COLOURS = {
    "sgd": OKABE_ITO["black"],
    "l2": OKABE_ITO["orange"],
    "ewc": OKABE_ITO["bluish_green"],
}
METHOD_LABELS = {"sgd": "plain SGD", "l2": "L2", "ewc": "EWC"}
CMAP = colormaps["viridis"].with_extremes(bad="white")  # perceptually uniform, CVD-safe
WIDTH = 9.5  # inches: fits the default notebook width

_HISTORY_KEYS = ("tasks", "settings", "steps", "accuracy", "boundaries", "accuracy_matrix")


def chance_line(ax: Axes, chance: float | None, lw: float = 1.5, label: bool = True) -> None:
    """A dotted grey line at the chance accuracy (``chance`` as a fraction, drawn in %),
    labelled "chance (x %)" for the legend when ``label``; nothing when ``chance`` is None.

    Raises ``ValueError`` for a chance that is not a fraction in [0, 1].
    """
    if chance is None:
        return
    chance = float(chance)
    if not (math.isfinite(chance) and 0 <= chance <= 1):
        raise ValueError(f"chance must be a fraction in [0, 1] or None, got {chance!r}")
    named = {"label": f"chance ({100 * chance:g} %)"} if label else {}
    ax.axhline(100 * chance, color="0.45", ls=":", lw=lw, **named)


def new_figure(figsize: tuple[float, float], fig: Figure | None = None) -> Figure:
    """A constrained-layout Figure of ``figsize`` inches, or ``fig`` cleared for a redraw."""
    if fig is None:
        return Figure(figsize=figsize, layout="constrained")
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure or None, got {type(fig).__name__}")
    fig.clear()
    return fig


def history_dict(history: object) -> dict:
    """A consistent plain-data view of a History (duck-typed) or of its ``to_dict()``."""
    if hasattr(history, "snapshot") and hasattr(history, "to_dict"):
        return history.to_dict()
    if isinstance(history, Mapping):
        missing = [k for k in _HISTORY_KEYS if k not in history]
        if missing:
            raise ValueError(f"history dict is missing keys {missing!r}")
        return dict(history)
    raise TypeError(f"expected a History or History.to_dict(), got {type(history).__name__}")


def title_suffix(settings: Mapping) -> str:
    method = settings.get("method")
    if method is None:
        return ""
    suffix = f": {METHOD_LABELS.get(method, method)}"
    if method != "sgd" and isinstance(settings.get("lam"), int | float):
        suffix += f", λ = {settings['lam']:g}"
    return suffix
