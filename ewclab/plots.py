"""Figures for the lab: accuracy curves, accuracy matrix, λ trade-off, Fisher maps, 2-D toy.

Every function takes plain data (a History or its ``to_dict()``, Fisher dicts, lists of
results) and returns a :class:`matplotlib.figure.Figure` built without pyplot, so it is
safe to draw from a worker thread and never opens a window. In a notebook, display the
returned figure; elsewhere call ``fig.savefig("out.png")``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

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


def _figure(figsize: tuple[float, float], fig: Figure | None = None) -> Figure:
    if fig is None:
        return Figure(figsize=figsize, layout="constrained")
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure or None, got {type(fig).__name__}")
    fig.clear()
    return fig


def _history_dict(history: object) -> dict:
    """A consistent plain-data view of a History (duck-typed) or of its ``to_dict()``."""
    if hasattr(history, "snapshot") and hasattr(history, "to_dict"):
        return history.to_dict()
    if isinstance(history, Mapping):
        missing = [k for k in _HISTORY_KEYS if k not in history]
        if missing:
            raise ValueError(f"history dict is missing keys {missing!r}")
        return dict(history)
    raise TypeError(f"expected a History or History.to_dict(), got {type(history).__name__}")


def _title_suffix(settings: Mapping) -> str:
    method = settings.get("method")
    if method is None:
        return ""
    suffix = f": {METHOD_LABELS.get(method, method)}"
    if method != "sgd" and isinstance(settings.get("lam"), int | float):
        suffix += f", λ = {settings['lam']:g}"
    return suffix


def plot_accuracy(history: object, fig: Figure | None = None) -> Figure:
    """Test accuracy of every task over training steps (the shape of Fig. 2A of the EWC paper).

    Shaded spans mark which task is being trained; a dashed line per task shows its
    accuracy right after it was learned, once known.

    Parameters
    ----------
    history : History or dict
        A :class:`ewclab.history.History` (read through a consistent copy) or its
        ``to_dict()`` form.
    fig : Figure, optional
        Redraw into this figure (cleared first) instead of making a new one; a live
        widget passes the same figure on every update.

    Returns
    -------
    matplotlib.figure.Figure
    """
    d = _history_dict(history)
    fig = _figure((WIDTH, 4.6), fig)
    ax = fig.add_subplot()
    tasks, steps, bounds = d["tasks"], np.asarray(d["steps"], float), list(d["boundaries"])
    start = min([*steps[:1], *bounds[:1]], default=0)
    end = max([*steps[-1:], *bounds[-1:]], default=0)
    end = max(end, start + 1)
    spans = list(zip(bounds, [*bounds[1:], end], strict=False))  # no spans before a start
    for i, (lo, hi) in enumerate(spans):
        ax.axvspan(lo, hi, color="0.88" if i % 2 == 0 else "0.96", lw=0, zorder=0)
    top = ax.secondary_xaxis("top")
    top.set_xticks(
        [(lo + hi) / 2 for lo, hi in spans], [f"training {t}" for t in tasks[: len(spans)]]
    )
    top.tick_params(length=0)
    for j, task in enumerate(tasks):
        colour = TASK_COLOURS[j % len(TASK_COLOURS)]
        acc = 100 * np.asarray(d["accuracy"][task], float)
        ax.plot(
            steps,
            acc,
            color=colour,
            lw=2,
            marker="o" if len(steps) <= 40 else None,
            ms=3.5,
            label=f"task {task}",
        )
        learned = d["accuracy_matrix"][j][j]
        if learned is not None and not math.isnan(learned) and j < len(bounds):
            ax.hlines(100 * learned, bounds[j], end, colors=colour, linestyles="--", lw=1.2)
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="0.3", ls="--", lw=1.2))
    labels.append("accuracy right after learning it")
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), fontsize=9)
    if steps.size == 0:
        ax.text(
            0.5, 0.5, "no evaluation points yet", transform=ax.transAxes, ha="center", color="0.4"
        )
    ax.set_xlim(start, end)
    ax.set_ylim(0, 101)
    ax.set_yticks(range(0, 101, 20))
    ax.set_xlabel("training step (mini-batches)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Test accuracy while training tasks in sequence" + _title_suffix(d["settings"]))
    return fig


def plot_accuracy_matrix(R: object, tasks: Sequence[str] | None = None) -> Figure:
    """Annotated heatmap of the accuracy matrix ``R[i, j]`` in %.

    Parameters
    ----------
    R : array_like of shape (T, T), or History, or History dict
        ``R[i, j]`` = test accuracy (fraction) on task ``j`` after training task ``i``;
        NaN or None where unknown. A History supplies its matrix and task names.
    tasks : sequence of str, optional
        Task names for the axes.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if hasattr(R, "snapshot") or isinstance(R, Mapping):
        d = _history_dict(R)
        R, tasks = d["accuracy_matrix"], tasks if tasks is not None else d["tasks"]
    M = np.array([[np.nan if x is None else x for x in row] for row in R], dtype=float)
    if M.ndim != 2 or M.shape[0] != M.shape[1] or M.shape[0] == 0:
        raise ValueError(f"R must be a non-empty square (T, T) matrix, got shape {M.shape}")
    if not np.all(np.isnan(M) | ((M >= 0) & (M <= 1))):
        raise ValueError("R must hold accuracies as fractions in [0, 1] (or NaN where unknown)")
    n = M.shape[0]
    tasks = [f"{i + 1}" for i in range(n)] if tasks is None else [str(t) for t in tasks]
    if len(tasks) != n:
        raise ValueError(f"got {len(tasks)} task names for a {n}x{n} matrix")
    side = min(WIDTH * 0.75, 2.5 + 1.1 * n)
    fig = _figure((side + 1.2, side))
    ax = fig.add_subplot()
    im = ax.imshow(100 * M, cmap=CMAP.with_extremes(bad="0.92"), vmin=0, vmax=100)
    for i in range(n):
        for j in range(n):
            v = 100 * M[i, j]
            text = "–" if math.isnan(v) else f"{v:.1f}"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=11,
                color="black" if math.isnan(v) or v > 55 else "white",
            )
    ax.set_xticks(range(n), tasks)
    ax.set_yticks(range(n), tasks)
    ax.set_xlabel("accuracy on task j")
    ax.set_ylabel("after training task i")
    ax.set_title("Accuracy matrix R[i, j] (test accuracy, %)")
    fig.colorbar(im, ax=ax, label="test accuracy (%)", shrink=0.85)
    return fig


def _check_results(results: object) -> list[dict]:
    if isinstance(results, Mapping) or not isinstance(results, Sequence) or not results:
        raise ValueError("results must be a non-empty list of dicts {method, lam, acc_a, acc_b}")
    out = []
    for k, r in enumerate(results):
        if not isinstance(r, Mapping) or not {"method", "lam", "acc_a", "acc_b"} <= set(r):
            raise ValueError(f"results[{k}] must have keys method, lam, acc_a, acc_b; got {r!r}")
        if r["method"] not in METHOD_LABELS:
            raise ValueError(f"results[{k}]: method must be one of {list(METHOD_LABELS)}")
        lam, a, b = float(r["lam"]), float(r["acc_a"]), float(r["acc_b"])
        if not (math.isfinite(lam) and lam >= 0 and 0 <= a <= 1 and 0 <= b <= 1):
            raise ValueError(f"results[{k}]: need lam >= 0 and accuracies in [0, 1], got {r!r}")
        out.append({"method": r["method"], "lam": lam, "acc_a": a, "acc_b": b})
    return out


def plot_tradeoff(results: Sequence[Mapping]) -> Figure:
    """Task-A and task-B accuracy against the penalty strength λ (log axis).

    Parameters
    ----------
    results : list of dict
        Each ``{"method": "sgd" | "l2" | "ewc", "lam": float, "acc_a": float,
        "acc_b": float}`` with accuracies as fractions. Plain SGD (and any run with
        λ = 0) is drawn as a horizontal reference line; repeated (method, λ) runs, e.g.
        several seeds, are averaged and also shown as faint points.

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows = _check_results(results)
    fig = _figure((WIDTH, 4.2))
    axes = fig.subplots(1, 2, sharey=True)
    panels = (("acc_a", "task A (learned first)"), ("acc_b", "task B (learned second)"))
    for ax, (key, title) in zip(axes, panels, strict=True):
        reference = [r[key] for r in rows if r["method"] == "sgd" or r["lam"] == 0]
        if reference:
            ax.axhline(
                100 * np.mean(reference),
                color=METHOD_COLOURS["sgd"],
                ls="--",
                lw=1.5,
                label="plain SGD (λ = 0)",
            )
        for method in ("l2", "ewc"):
            runs = [r for r in rows if r["method"] == method and r["lam"] > 0]
            if not runs:
                continue
            lams = sorted({r["lam"] for r in runs})
            mean = [100 * np.mean([r[key] for r in runs if r["lam"] == lam]) for lam in lams]
            colour = METHOD_COLOURS[method]
            ax.plot(lams, mean, color=colour, marker="o", lw=2, label=METHOD_LABELS[method])
            ax.scatter(
                [r["lam"] for r in runs],
                [100 * r[key] for r in runs],
                color=colour,
                alpha=0.35,
                s=14,
                lw=0,
            )
        ax.set_xscale("log")
        ax.set_ylim(0, 101)
        ax.set_title(title)
        ax.set_xlabel("penalty strength λ (log scale)")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("test accuracy after training B (%)")
    axes[0].legend(loc="lower left", fontsize=9, framealpha=0.9)
    fig.suptitle("Remembering task A vs learning task B as λ grows")
    return fig


# --------------------------------------------------------------------------- Fisher maps


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
    return sums / counts, f"\nmeans of {fr}×{fc} blocks"


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
    title = f"{name}\n{matrix.shape[0]} out × {matrix.shape[1]} in{note}"
    return _View(img, title, "input unit", "output unit", extent)


def _input_view(name: str, a: np.ndarray) -> _View | None:
    """The first layer's Fisher summed onto the input grid, where that makes sense."""
    if a.ndim == 2 and a.shape[1] % 784 == 0:
        pixels = a.sum(axis=0).reshape(-1, 28, 28).sum(axis=0)
        return _View(
            pixels,
            f"{name}\nsummed onto input pixels:\nwhich pixels matter",
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
    ax.set_title(view.title, fontsize=9)
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
    ncols = min(3, len(views))
    nrows = math.ceil(len(views) / ncols)
    fig = _figure((WIDTH, 3.3 * nrows + 3.0))
    grid = fig.add_gridspec(nrows + 1, ncols, height_ratios=[1.1] * nrows + [1])
    for k, view in enumerate(views):
        _heatmap(fig, fig.add_subplot(grid[divmod(k, ncols)]), view)
    _histogram(fig.add_subplot(grid[nrows, :]), _hist_series(arrays), TASK_COLOURS)
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
    fig = _figure((WIDTH, 3.6 + 3.0))
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
    fig = _figure((WIDTH, 6.8))
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


# --------------------------------------------------------------------------- 2-D toy


def plot_toy(
    task_a,
    task_b,
    paths: Mapping[str, np.ndarray],
    lam: float | None = None,
    fig: Figure | None = None,
) -> Figure:
    """Both tasks' loss contours, their optima and the descent paths of ``ewclab.toy``.

    Parameters
    ----------
    task_a, task_b : ewclab.toy.Quadratic
        Objects with ``optimum`` (shape (2,)) and ``loss(theta)`` for ``(..., 2)`` arrays.
    paths : dict of str to array of shape (steps + 1, 2)
        From :func:`ewclab.toy.descent_paths`; keys among "sgd", "l2", "ewc".
    lam : float, optional
        λ used for the paths, shown in the title.
    fig : Figure, optional
        Redraw into this figure (for a slider).

    Returns
    -------
    matplotlib.figure.Figure
    """
    unknown = set(paths) - set(METHOD_LABELS)
    if unknown:
        raise ValueError(f"paths keys must be among {list(METHOD_LABELS)}, got {sorted(unknown)}")
    opt_a, opt_b = np.asarray(task_a.optimum, float), np.asarray(task_b.optimum, float)
    points = np.vstack([opt_a, opt_b, *[np.asarray(p, float) for p in paths.values()]])
    lo, hi = points.min(axis=0), points.max(axis=0)
    centre, half = (lo + hi) / 2, 0.65 * max(hi - lo) + 0.5
    xlim, ylim = (centre[0] - half, centre[0] + half), (centre[1] - half, centre[1] + half)
    t1, t2 = np.meshgrid(np.linspace(*xlim, 161), np.linspace(*ylim, 161))
    grid = np.stack([t1, t2], axis=-1)
    fig = _figure((WIDTH * 0.8, 6.2), fig)
    ax = fig.add_subplot()
    for task, other, colour, style in (
        (task_a, opt_b, OKABE_ITO["blue"], "solid"),
        (task_b, opt_a, OKABE_ITO["reddish_purple"], "dashed"),
    ):
        top = max(float(task.loss(other)), 1e-3)
        ax.contour(
            t1,
            t2,
            task.loss(grid),
            levels=top * 2.0 ** np.arange(-5, 1),
            colors=colour,
            linestyles=style,
            linewidths=1.1,
        )
    order = [m for m in ("sgd", "l2", "ewc") if m in paths]
    for rank, method in enumerate(order):  # wider lines underneath: coinciding paths stay visible
        p = np.asarray(paths[method], float)
        end = p[-1]
        label = (
            f"{METHOD_LABELS[method]}: $L_A$ = {float(task_a.loss(end)):.2f}, "
            f"$L_B$ = {float(task_b.loss(end)):.2f}"
        )
        ax.plot(
            p[:, 0],
            p[:, 1],
            color=METHOD_COLOURS[method],
            lw=5.5 - 1.7 * rank,
            label=label,
            solid_capstyle="round",
        )
        ax.plot(*end, "o", color=METHOD_COLOURS[method], ms=10 - 2 * rank, mec="white")
    for opt, colour, text in (
        (opt_a, OKABE_ITO["blue"], r"$\theta^*_A$"),
        (opt_b, OKABE_ITO["reddish_purple"], r"$\theta^*_B$"),
    ):
        ax.plot(*opt, "*", color=colour, ms=16, mec="black", mew=0.6, zorder=5)
        ax.annotate(
            text, opt, xytext=(10, -20), textcoords="offset points", fontsize=13, color=colour
        )
    handles, labels = ax.get_legend_handles_labels()
    handles += [
        Line2D([], [], color=OKABE_ITO["blue"], lw=1.1),
        Line2D([], [], color=OKABE_ITO["reddish_purple"], lw=1.1, ls="dashed"),
    ]
    labels += ["task A loss contours", "task B loss contours"]
    ax.legend(handles, labels, loc="upper left", fontsize=9, framealpha=0.92)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.set_xlabel(r"parameter $\theta_1$")
    ax.set_ylabel(r"parameter $\theta_2$")
    suffix = f" (λ = {lam:g})" if lam is not None else ""
    ax.set_title(f"Training on task B, starting from task A's optimum{suffix}")
    return fig
