"""The 2-D toy's pictures: loss contours and descent paths (lesson 00), and task A's Laplace
posterior with its diagonal approximation (lesson 02b)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ewclab.plots.style import METHOD_COLOURS, METHOD_LABELS, OKABE_ITO, WIDTH, new_figure
from ewclab.toy import end_point, gaussian_ellipse


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
    fig = new_figure((WIDTH * 0.8, 6.2), fig)
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


def plot_laplace(task_a, task_b, lam: float = 1.0, fig: Figure | None = None) -> Figure:
    """Task A's Laplace posterior, its diagonal approximation, and where each takes task B.

    Draws the one- and two-standard-deviation ellipses of the Gaussian
    ``N(θ*_A, F⁻¹)`` with task A's full Fisher ``F = H`` (solid) and with only its
    diagonal, as EWC keeps it (dotted), task B's loss contours, and the minimisers of
    ``L_B + λ/2 (θ − θ*_A)ᵀ W (θ − θ*_A)`` for ``W = F`` ("full Fisher") and
    ``W = diag(F)`` ("EWC"), each labelled with ``L_A + L_B`` there (lesson 02b).

    Parameters
    ----------
    task_a, task_b : ewclab.toy.Quadratic
    lam : float
        Penalty strength λ; with λ = 1 the full-Fisher point is the joint optimum.
    fig : Figure, optional
        Redraw into this figure (for a slider).

    Returns
    -------
    matplotlib.figure.Figure
    """
    ends = {m: end_point(task_a, task_b, lam, m) for m in ("laplace", "ewc")}
    opt_a, opt_b = np.asarray(task_a.optimum, float), np.asarray(task_b.optimum, float)
    full = np.asarray(task_a.hessian, float)
    diagonal = np.diag(np.diag(full))
    curves = {
        name: [gaussian_ellipse(opt_a, w / k**2) for k in (1, 2)]
        for name, w in (("full", full), ("diagonal", diagonal))
    }
    points = np.vstack([opt_a, opt_b, *ends.values(), *curves["full"], *curves["diagonal"]])
    lo, hi = points.min(axis=0), points.max(axis=0)
    centre, half = (lo + hi) / 2, 0.55 * max(hi - lo) + 0.3
    xlim, ylim = (centre[0] - half, centre[0] + half), (centre[1] - half, centre[1] + half)
    t1, t2 = np.meshgrid(np.linspace(*xlim, 161), np.linspace(*ylim, 161))
    fig = new_figure((WIDTH * 0.8, 6.2), fig)
    ax = fig.add_subplot()
    top = max(float(task_b.loss(opt_a)), 1e-3)
    ax.contour(t1, t2, task_b.loss(np.stack([t1, t2], axis=-1)),
               levels=top * 2.0 ** np.arange(-5, 1), colors=OKABE_ITO["reddish_purple"],
               linestyles="dashed", linewidths=0.9)
    for name, colour, style in (("full", OKABE_ITO["blue"], "solid"),
                                ("diagonal", OKABE_ITO["bluish_green"], "dotted")):
        for k, curve in enumerate(curves[name]):
            ax.plot(curve[:, 0], curve[:, 1], color=colour, ls=style, lw=2.2 - 0.8 * k)
    both = {m: float(task_a.loss(e) + task_b.loss(e)) for m, e in ends.items()}
    ax.plot(*ends["laplace"], "*", color=OKABE_ITO["blue"], ms=17, mec="black", zorder=6)
    ax.plot(*ends["ewc"], "o", color=OKABE_ITO["bluish_green"], ms=10, mec="black", zorder=6)
    for opt, colour, text in ((opt_a, OKABE_ITO["blue"], r"$\theta^*_A$"),
                              (opt_b, OKABE_ITO["reddish_purple"], r"$\theta^*_B$")):
        ax.plot(*opt, "P", color=colour, ms=11, mec="black", mew=0.6, zorder=5)
        ax.annotate(text, opt, xytext=(8, -18), textcoords="offset points", fontsize=13,
                    color=colour)
    handles = [
        Line2D([], [], color=OKABE_ITO["blue"], lw=2),
        Line2D([], [], color=OKABE_ITO["bluish_green"], lw=2, ls="dotted"),
        Line2D([], [], color=OKABE_ITO["reddish_purple"], lw=0.9, ls="dashed"),
        Line2D([], [], color=OKABE_ITO["blue"], marker="*", ms=14, mec="black", ls=""),
        Line2D([], [], color=OKABE_ITO["bluish_green"], marker="o", ms=9, mec="black", ls=""),
    ]
    labels = [
        "task A posterior, full Fisher (1σ, 2σ)",
        "its diagonal approximation (EWC)",
        "task B loss contours",
        f"full-Fisher penalty: $L_A + L_B$ = {both['laplace']:.2f}",
        f"diagonal (EWC) penalty: $L_A + L_B$ = {both['ewc']:.2f}",
    ]
    ax.legend(handles, labels, loc="upper left", fontsize=9, framealpha=0.92)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.set_xlabel(r"parameter $\theta_1$")
    ax.set_ylabel(r"parameter $\theta_2$")
    ax.set_title(f"Laplace approximation of task A, and where task B ends (λ = {lam:g})")
    return fig


def plot_toy_tradeoff(
    lams: np.ndarray, losses: Mapping[str, np.ndarray], mark: float | None = None
) -> Figure:
    """Trade-off (Pareto) curves of the toy: task-B loss against task-A loss as λ runs (lesson 00).

    Parameters
    ----------
    lams : array of shape (n,)
        The λ grid, increasing.
    losses : dict of str to array of shape (n, 2)
        ``{"l2": ..., "ewc": ...}`` from :func:`ewclab.toy.end_losses`: columns (L_A, L_B).
    mark : float, optional
        A λ of the grid to highlight on every curve (e.g. the lesson's λ = 3).

    Returns
    -------
    matplotlib.figure.Figure
    """
    lams = np.asarray(lams, dtype=float)
    unknown = set(losses) - set(METHOD_LABELS)
    if unknown or not losses:
        raise ValueError(f"losses keys must be among {list(METHOD_LABELS)}, got {sorted(losses)}")
    fig = new_figure((WIDTH * 0.8, 5.2))
    ax = fig.add_subplot()
    for (method, values), marker in zip(losses.items(), ("s", "o", "^"), strict=False):
        values = np.asarray(values, dtype=float)
        if values.shape != (len(lams), 2):
            raise ValueError(f"losses[{method!r}] must have shape ({len(lams)}, 2)")
        colour = METHOD_COLOURS[method]
        ax.plot(values[:, 0], values[:, 1], color=colour, marker=marker, ms=4, lw=1.8,
                label=f"{METHOD_LABELS[method]}, λ from {lams[0]:g} to {lams[-1]:g}")
        if mark is not None:
            k = int(np.argmin(np.abs(lams - mark)))
            ax.plot(*values[k], marker=marker, ms=12, color=colour, mec="black", ls="")
            ax.annotate(f"λ = {lams[k]:.2g}", values[k], xytext=(8, 6), textcoords="offset points",
                        color=colour)
    ax.set_xscale("log")
    ax.set_xlabel(r"task-A loss $L_A$ at the end (forgetting; log scale)")
    ax.set_ylabel(r"task-B loss $L_B$ at the end")
    ax.set_title("Trade-off: lower-left is better on both tasks")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=9)
    return fig
