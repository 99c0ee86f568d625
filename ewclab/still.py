"""Figures with alt text, and widgets that leave a still picture for readers without a kernel.

A notebook opened without a running kernel (GitHub, nbviewer, a static HTML export) cannot
draw a live widget. :func:`show_live` displays a widget *and* a still figure in one output:
Jupyter shows the widget, every other viewer falls back to the picture. Every picture carries
an alt text, the sentence a screen reader says and that text-only viewers print
(``text/plain``); nbconvert's HTML export puts it in the image's ``alt`` attribute.
Used by every lesson (00–05).
"""

from __future__ import annotations

import base64
import io
from typing import Any

from matplotlib.figure import Figure

__all__ = ["figure_bundle", "show_figure", "show_live"]


def _check_alt(alt: Any) -> str:
    if not isinstance(alt, str):
        raise TypeError(f"alt must be a str, got {type(alt).__name__}")
    if not alt.strip():
        raise ValueError(f"alt must be a non-empty description of the figure, got {alt!r}")
    return alt.strip()


def figure_bundle(fig: Figure, alt: str) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The figure as a display bundle: a PNG plus its alt text.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure to render (at its own size and dpi).
    alt : str
        What the figure shows, in one or two sentences.

    Returns
    -------
    data, metadata : dict
        ``{"image/png": base64 PNG, "text/plain": alt}`` and ``{"image/png": {"alt": alt}}``,
        ready for ``IPython.display.display(data, metadata=metadata, raw=True)``.
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    alt = _check_alt(alt)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    png = base64.b64encode(buffer.getvalue()).decode("ascii")
    return {"image/png": png, "text/plain": alt}, {"image/png": {"alt": alt}}


def show_figure(fig: Figure, alt: str) -> None:
    """Display ``fig`` with its alt text (see :func:`figure_bundle`)."""
    from IPython.display import display

    data, metadata = figure_bundle(fig, alt)
    display(data, metadata=metadata, raw=True)


def show_live(widget: Any, still: Figure, alt: str) -> None:
    """Display ``widget`` for Jupyter and ``still`` (with ``alt``) for every other viewer.

    Parameters
    ----------
    widget : ipywidgets.Widget
        The live control (anything with ``_repr_mimebundle_``, as every ipywidgets widget has).
    still : matplotlib.figure.Figure
        What a reader without a kernel sees instead: usually the figure the lesson's default
        run drew.
    alt : str
        Alt text of ``still``.
    """
    from IPython.display import display

    data, metadata = live_bundle(widget, still, alt)
    display(data, metadata=metadata, raw=True)


def live_bundle(widget: Any, still: Figure, alt: str) -> tuple[dict, dict]:
    """The bundle :func:`show_live` displays: the still figure's PNG and alt text, plus the
    widget's view (which Jupyter prefers when a kernel is running)."""
    if not hasattr(widget, "_repr_mimebundle_"):
        raise TypeError(f"widget must be an ipywidgets widget, got {type(widget).__name__}")
    data, metadata = figure_bundle(still, alt)
    view = widget._repr_mimebundle_()
    view.pop("text/plain", None)  # a reader without widgets reads the alt text instead
    return {**data, **view}, metadata
