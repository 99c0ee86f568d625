"""Fisher information maps: per-layer heatmaps on a log scale, histograms, comparisons."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure

from ewclab.plots.style import CMAP, OKABE_ITO, TASK_COLOURS, WIDTH, new_figure


class _View(NamedTuple):
    """One heatmap: the image, a two-line title, axis labels, and its extent in data units."""

    img: np.ndarray
    title: str
    xlabel: str
    ylabel: str
    extent: tuple[float, float, float, float] | None = None


def _fisher_arrays(fisher: object, model: object = None) -> dict[str, np.ndarray]:
    if not isinstance(fisher, Mapping) or not fisher:
        raise TypeError("fisher must be a non-empty dict parameter name -> tensor")
    names = list(fisher)
    if model is not None:
        order = [n for n, _ in model.named_parameters() if n in fisher]
        names = order + [n for n in names if n not in order]
    out = {}
    for name in names:
        value = fisher[name]
        value = value.detach().cpu() if hasattr(value, "detach") else value
        a = np.asarray(value, dtype=np.float32)  # float32 keeps AlexNet's 37M-value layer light
        if not np.all(np.isfinite(a)) or np.any(a < 0):
            raise ValueError(f"Fisher values must be finite and >= 0; {name!r} is not")
        out[name] = a
    return out


def _weight_names(arrays: Mapping[str, np.ndarray]) -> list[str]:
    names = [n for n, a in arrays.items() if "weight" in n and a.ndim >= 2]
    if not names:
        raise ValueError(f"no weight tensors (name containing 'weight', >= 2-D) in {list(arrays)}")
    return names


def _log_norm(*images: np.ndarray) -> LogNorm:
    """A shared log scale spanning at least two decades; zeros sit on the floor."""
    values = np.concatenate([np.ravel(i) for i in images])
    positive = values[np.isfinite(values) & (values > 0)]
    vmax = float(positive.max()) if positive.size else 1.0
    vmin = max(float(positive.min()), vmax * 1e-6) if positive.size else vmax * 1e-6
    return LogNorm(vmin=min(vmin, vmax * 1e-2), vmax=vmax)


def _pool(matrix: np.ndarray, limit: int = 300) -> tuple[np.ndarray, str]:
    """Block-average a large matrix down to at most ``limit`` pixels per side."""
    (h, w), (fr, fc) = matrix.shape, (-(-matrix.shape[0] // limit), -(-matrix.shape[1] // limit))
    if fr == fc == 1:
        return matrix, ""
    rows, cols = -(-h // fr) * fr, -(-w // fc) * fc
    padded = np.zeros((rows, cols), dtype=matrix.dtype)
    padded[:h, :w] = matrix
    sums = padded.reshape(rows // fr, fr, cols // fc, fc).sum(axis=(1, 3))
    counts = np.outer(
        np.minimum(fr, h - np.arange(0, rows, fr)), np.minimum(fc, w - np.arange(0, cols, fc))
    )
    return sums / counts, f"\n(each cell: mean of {fr}×{fc} weights)"


def _layer_view(name: str, a: np.ndarray) -> _View:
    """A heatmap of one parameter tensor's Fisher."""
    if a.ndim == 4:
        out, cin, kh, kw = a.shape
        ncols = math.ceil(math.sqrt(out))
        nrows = math.ceil(out / ncols)
        img = np.full((nrows * (kh + 1) - 1, ncols * (kw + 1) - 1), np.nan)
        for f, kernel in enumerate(a.sum(axis=1)):
            r, c = divmod(f, ncols)
            img[r * (kh + 1) : r * (kh + 1) + kh, c * (kw + 1) : c * (kw + 1) + kw] = kernel
        title = f"{name}\n{out} filters {kh}×{kw}\nsummed over {cin} channels"
        return _View(img, title, f"{ncols} filters per row", "filter rows")
    if a.ndim == 1:
        return _View(a[None, :], f"{name}\n{a.size} values", "index", "")
    matrix = a.reshape(a.shape[0], -1)
    img, note = _pool(matrix)
    extent = (-0.5, matrix.shape[1] - 0.5, matrix.shape[0] - 0.5, -0.5)
    title = f"{name}: {matrix.shape[0]} outputs × {matrix.shape[1]} inputs{note}"
    return _View(img, title, "input unit", "output unit", extent)


def _input_view(name: str, a: np.ndarray) -> _View | None:
    """The first layer's Fisher summed onto the input grid, where that makes sense."""
    if a.ndim == 2 and a.shape[1] % 784 == 0:
        pixels = a.sum(axis=0).reshape(-1, 28, 28).sum(axis=0)
        return _View(
            pixels,
            f"{name} summed onto input pixels\n(over the layer's {a.shape[0]} units)",
            "pixel column",
            "pixel row",
        )
    if a.ndim == 4:
        title = f"{name}\nconvolution, so no pixel map:\nkernel summed over filters"
        return _View(a.sum(axis=(0, 1)), title, "kernel column", "kernel row")
    return None


def _heatmap(
    fig: Figure,
    ax,
    view: _View,
    norm: Normalize | None = None,
    cmap=CMAP,
    label: str = "Fisher (log scale)",
) -> None:
    img = view.img
    norm = norm if norm is not None else _log_norm(img)
    if isinstance(norm, LogNorm):
        img = np.where(np.isnan(img), np.nan, np.maximum(img, norm.vmin))
    square = img.shape[0] <= 2 * img.shape[1] and img.shape[1] <= 2 * img.shape[0]
    square = square and view.extent is None  # matrices fill the panel
    im = ax.imshow(
        img,
        norm=norm,
        cmap=cmap,
        aspect="equal" if square else "auto",
        interpolation="nearest",
        extent=view.extent,
    )
    ax.set_title(view.title, fontsize=10)
    ax.set_xlabel(view.xlabel)
    ax.set_ylabel(view.ylabel)
    if img.shape[0] == 1:
        ax.set_yticks([])
    fig.colorbar(im, ax=ax, shrink=0.85, label=label)


def _histogram(ax, series: Sequence[tuple[str, np.ndarray]], colours: Sequence[str]) -> None:
    """Overlaid step histograms of Fisher values on log-spaced bins (zeros counted apart)."""
    logs = [np.log10(v[v > 0]) for _, v in series]
    nonempty = [x for x in logs if x.size]
    if not nonempty:
        ax.text(0.5, 0.5, "all Fisher values are zero", transform=ax.transAxes, ha="center")
    else:
        lo, hi = min(x.min() for x in nonempty), max(x.max() for x in nonempty)
        edges = np.linspace(lo, max(hi, lo + 1) + 1e-6, 61)  # uniform in log10: fast binning
        for k, ((label, v), x) in enumerate(zip(series, logs, strict=True)):
            zeros = v.size - x.size
            label += f" ({zeros / v.size:.0%} zeros, not shown)" if zeros else ""
            counts, _ = np.histogram(x, edges)
            style = ("solid", "dashed", "dotted")[k // len(colours) % 3]
            ax.stairs(
                counts / max(v.size, 1),
                10**edges,
                lw=1.6,
                ls=style,
                color=colours[k % len(colours)],
                label=label,
            )
        ax.set_xscale("log")
        ax.legend(fontsize=8.5, framealpha=0.9, loc="upper left")
    ax.set_title("Distribution of Fisher values", fontsize=10)
    ax.set_xlabel("diagonal Fisher value (log scale)")
    ax.set_ylabel("fraction of the tensor's values")


def _hist_series(arrays: Mapping[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    weights = _weight_names(arrays)
    series = [(n, arrays[n].ravel()) for n in weights]
    others = [arrays[n].ravel() for n in arrays if n not in weights]
    if others:
        series.append(("biases and other", np.concatenate(others)))
    return series


def plot_fisher(fisher: Mapping[str, object], model: object = None) -> Figure:
    """Heatmaps of the diagonal Fisher of every weight layer, plus a histogram of all values.

    Conv weights ``(out, in, k, k)`` are summed over ``in`` and tiled as one small image
    per filter; fully connected weights are shown as matrices (block-averaged when
    large). When the first layer is a Linear layer on 28×28 images its Fisher is also
    summed back onto the input pixels. Colours are on a log scale.

    Parameters
    ----------
    fisher : dict of str to tensor or array
        As returned by ``ewclab.fisher.fisher_diagonal`` (names from
        ``model.named_parameters()``).
    model : torch.nn.Module, optional
        Only used to order the layers; shapes alone suffice.

    Returns
    -------
    matplotlib.figure.Figure
    """
    arrays = _fisher_arrays(fisher, model)
    weights = _weight_names(arrays)
    first = _input_view(weights[0], arrays[weights[0]])
    views = ([first] if first is not None else []) + [_layer_view(n, arrays[n]) for n in weights]
    ncols = 2 if len(views) in (2, 4) else min(3, len(views))  # 2×2 rather than 3 + 1
    nrows = math.ceil(len(views) / ncols)
    left = len(views) % ncols  # no empty panels: the histogram fills the last row's gap
    fig = new_figure((WIDTH, 3.6 * nrows + (0 if left else 3.0)))
    grid = fig.add_gridspec(nrows + (0 if left else 1), ncols)
    for k, view in enumerate(views):
        _heatmap(fig, fig.add_subplot(grid[divmod(k, ncols)]), view)
    hist = grid[nrows - 1, left:] if left else grid[nrows, :]
    _histogram(fig.add_subplot(hist), _hist_series(arrays), TASK_COLOURS)
    fig.suptitle("Diagonal Fisher information per layer (log colour scale)")
    return fig


def plot_fisher_layer(fisher: Mapping[str, object], name: str) -> Figure:
    """The Fisher of one parameter tensor: heatmap, input-pixel map if any, histogram.

    Parameters
    ----------
    fisher : dict of str to tensor or array
        As for :func:`plot_fisher`.
    name : str
        A key of ``fisher``, e.g. ``"fc1.weight"``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if name not in fisher:
        raise ValueError(f"no parameter {name!r} in the Fisher dict; choose from {list(fisher)}")
    a = _fisher_arrays({name: fisher[name]})[name]
    views = [_layer_view(name, a)]
    pixels = _input_view(name, a) if a.ndim == 2 else None
    views += [pixels] if pixels is not None else []
    fig = new_figure((WIDTH, 3.6 + 3.0))
    grid = fig.add_gridspec(2, len(views), height_ratios=[1.2, 1])
    for k, view in enumerate(views):
        _heatmap(fig, fig.add_subplot(grid[0, k]), view)
    _histogram(fig.add_subplot(grid[1, :]), [(name, a.ravel())], TASK_COLOURS)
    fig.suptitle(f"Diagonal Fisher of {name} (log colour scale)")
    return fig


def plot_fisher_compare(
    f_a: Mapping[str, object],
    f_b: Mapping[str, object],
    labels: Sequence[str] = ("task A", "task B"),
) -> Figure:
    """Two Fisher dicts side by side on one colour scale, their ratio, and both histograms.

    Shows the first weight layer (summed onto the input pixels when it is a Linear layer
    on 28×28 images). Serves task A vs task B as well as empirical vs exact Fisher.

    Parameters
    ----------
    f_a, f_b : dict of str to tensor or array
        Fisher dicts of the same model.
    labels : pair of str
        Names for ``f_a`` and ``f_b``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if isinstance(labels, str) or len(labels) != 2:
        raise ValueError(f"labels must be two names, got {labels!r}")
    a, b = _fisher_arrays(f_a), _fisher_arrays(f_b)
    name = _weight_names(a)[0]
    if name not in b or a[name].shape != b[name].shape:
        raise ValueError(f"both Fisher dicts need {name!r} with shape {a[name].shape}")
    view = _input_view if a[name].ndim == 2 and a[name].shape[1] % 784 == 0 else _layer_view
    va, vb = view(name, a[name]), view(name, b[name])
    norm = _log_norm(va.img, vb.img)
    fig = new_figure((WIDTH, 6.8))
    axes = fig.subplot_mosaic([["a", "b", "r"], ["h", "h", "h"]], height_ratios=[1.15, 1])
    _heatmap(fig, axes["a"], va._replace(title=f"{labels[0]} · {va.title}"), norm=norm)
    _heatmap(fig, axes["b"], vb._replace(title=f"{labels[1]} · {vb.title}"), norm=norm)
    ratio = np.log10(np.maximum(vb.img, norm.vmin) / np.maximum(va.img, norm.vmin))
    limit = max(float(np.nanmax(np.abs(ratio))), 1e-3)
    title = (
        f"log₁₀({labels[1]} / {labels[0]})\npurple: {labels[1]} higher\norange: {labels[0]} higher"
    )
    _heatmap(
        fig,
        axes["r"],
        va._replace(img=ratio, title=title),
        norm=Normalize(-limit, limit),
        cmap=colormaps["PuOr"].with_extremes(bad="white"),
        label="log₁₀ ratio",
    )
    series = [
        (label, np.concatenate([v.ravel() for v in f.values()]))
        for label, f in zip(labels, (a, b), strict=True)
    ]
    _histogram(axes["h"], series, (OKABE_ITO["blue"], OKABE_ITO["vermillion"]))
    fig.suptitle(f"Fisher information: {labels[0]} vs {labels[1]} (same log colour scale)")
    return fig
