"""The Fisher explorer (pick a layer, see its Fisher heatmap) and figure output for widgets.

>>> from ewclab.widgets_fisher import FisherExplorer
>>> FisherExplorer(history.fisher["mnist"], model)   # doctest: +SKIP   (shows the explorer)

:func:`show_figure` is how every ewclab widget shows a figure, also from a worker thread:
it replaces an ``Output`` widget's content by one PNG (no pyplot, no ``with out:``).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import Any

import ipywidgets as w
import torch
from matplotlib.figure import Figure

from ewclab import plots

__all__ = ["FisherExplorer", "show_figure"]


def _png_output(fig: Figure, dpi: int = 80) -> dict:
    """A figure as one Jupyter ``display_data`` output (PNG), ready for ``Output.outputs``.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        Rendered with ``savefig`` (no pyplot involved, nothing left open).
    dpi : int
        Resolution of the PNG.

    Returns
    -------
    dict
        ``{"output_type": "display_data", "data": {"image/png": base64, ...}, ...}``.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    png = base64.b64encode(buffer.getvalue()).decode("ascii")
    return {
        "output_type": "display_data",
        "data": {"image/png": png, "text/plain": "<Figure>"},
        "metadata": {},
    }


def show_figure(out: w.Output, fig: Figure) -> None:
    """Replace what ``out`` shows by ``fig``, in one state update.

    Assigning ``outputs`` is what ``clear_output(wait=True)`` + ``append_display_data``
    amount to, without flicker and without the ``with out:`` context that is unsafe from
    a worker thread (it would capture whatever the kernel's current cell prints).

    Parameters
    ----------
    out : ipywidgets.Output
        The widget to draw into.
    fig : matplotlib.figure.Figure
        The figure to show.
    """
    out.outputs = (_png_output(fig),)


class FisherExplorer:
    """Pick a layer, see its Fisher heatmap (:func:`ewclab.plots.plot_fisher_layer`).

    Parameters
    ----------
    fisher : dict of str to tensor or array
        A diagonal Fisher, e.g. ``history.fisher["mnist"]``.
    model : torch.nn.Module, optional
        Orders the layer names as the model's parameters.

    Attributes
    ----------
    layer : ipywidgets.Dropdown
        The layer names; changing ``.value`` redraws.
    out : ipywidgets.Output
        Holds the heatmap (CSS class ``ewclab-fisher``).
    widget : ipywidgets.VBox
        The explorer (displaying the explorer displays it).
    """

    def __init__(self, fisher: Mapping[str, Any], model: torch.nn.Module | None = None) -> None:
        if not isinstance(fisher, Mapping) or not fisher:
            raise TypeError(
                f"fisher must be a non-empty dict parameter name -> tensor, got {fisher!r}"
            )
        names = list(fisher)
        if model is not None:
            if not isinstance(model, torch.nn.Module):
                raise TypeError(f"model must be a torch Module or None, got {model!r}")
            order = [n for n, _ in model.named_parameters() if n in fisher]
            names = order + [n for n in names if n not in order]
        self.fisher = fisher
        self.layer = w.Dropdown(options=names, value=names[0], description="layer")
        self.out = w.Output().add_class("ewclab-fisher")
        self.layer.observe(lambda change: self._draw(change["new"]), names="value")
        self.widget = w.VBox([self.layer, self.out])
        self._draw(names[0])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _draw(self, name: str) -> None:
        show_figure(self.out, plots.plot_fisher_layer(self.fisher, name))
