"""Curves of a run: accuracy over steps, the accuracy matrix, and the λ trade-off."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ewclab.plots.style import (
    CMAP,
    METHOD_COLOURS,
    METHOD_LABELS,
    TASK_COLOURS,
    WIDTH,
    chance_line,
    history_dict,
    new_figure,
    title_suffix,
)

MARKERS = ("o", "s", "^", "D", "v", "P", "X")  # one per task: readable without colour


def plot_accuracy(
    history: object, fig: Figure | None = None, chance: float | None = None
) -> Figure:
    """Test accuracy of every task over training steps (the shape of Fig. 2A of the EWC paper).

    Shaded spans mark which task is being trained; a dashed line per task shows its
    accuracy right after it was learned, once known. Each task has its own colour and
    marker.

    Parameters
    ----------
    history : History or dict
        A :class:`ewclab.history.History` (read through a consistent copy) or its
        ``to_dict()`` form.
    fig : Figure, optional
        Redraw into this figure (cleared first) instead of making a new one; a live
        widget passes the same figure on every update.
    chance : float, optional
        Accuracy of guessing (e.g. 0.1 for ten classes), drawn as a dotted line (lesson 01).

    Returns
    -------
    matplotlib.figure.Figure
    """
    d = history_dict(history)
    fig = new_figure((WIDTH, 4.6), fig)
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
            marker=MARKERS[j % len(MARKERS)],
            markevery=max(1, len(steps) // 40),
            ms=4.5,
            label=f"task {task}",
        )
        learned = d["accuracy_matrix"][j][j]
        if learned is not None and not math.isnan(learned) and j < len(bounds):
            ax.hlines(100 * learned, bounds[j], end, colors=colour, linestyles="--", lw=1.2)
    chance_line(ax, chance)
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
    ax.set_title("Test accuracy while training tasks in sequence" + title_suffix(d["settings"]))
    return fig


def plot_accuracy_matrix(
    R: object, tasks: Sequence[str] | None = None, mask_untrained: bool = False
) -> Figure:
    """Annotated heatmap of the accuracy matrix ``R[i, j]`` in %.

    Parameters
    ----------
    R : array_like of shape (T, T), or History, or History dict
        ``R[i, j]`` = test accuracy (fraction) on task ``j`` after training task ``i``;
        NaN or None where unknown. A History supplies its matrix and task names.
    tasks : sequence of str, optional
        Task names for the axes.
    mask_untrained : bool, default False
        Grey out the cells above the diagonal (task ``j`` not trained yet after task ``i``:
        its accuracy there is a guess, not a memory), labelled "not trained" (lesson 05).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(mask_untrained, bool):
        raise TypeError(f"mask_untrained must be a bool, got {type(mask_untrained).__name__}")
    if hasattr(R, "snapshot") or isinstance(R, Mapping):
        d = history_dict(R)
        R, tasks = d["accuracy_matrix"], tasks if tasks is not None else d["tasks"]
    M = np.array([[np.nan if x is None else x for x in row] for row in R], dtype=float)
    if M.ndim != 2 or M.shape[0] != M.shape[1] or M.shape[0] == 0:
        raise ValueError(f"R must be a non-empty square (T, T) matrix, got shape {M.shape}")
    if not np.all(np.isnan(M) | ((M >= 0) & (M <= 1))):
        raise ValueError("R must hold accuracies as fractions in [0, 1] (or NaN where unknown)")
    n = M.shape[0]
    untrained = np.triu(np.ones((n, n), dtype=bool), k=1) & mask_untrained
    M = np.where(untrained, np.nan, M)
    tasks = [f"{i + 1}" for i in range(n)] if tasks is None else [str(t) for t in tasks]
    if len(tasks) != n:
        raise ValueError(f"got {len(tasks)} task names for a {n}x{n} matrix")
    side = min(WIDTH * 0.75, 2.5 + 1.1 * n)
    fig = new_figure((side + 1.2, side))
    ax = fig.add_subplot()
    im = ax.imshow(100 * M, cmap=CMAP.with_extremes(bad="0.92"), vmin=0, vmax=100)
    for i in range(n):
        for j in range(n):
            v = 100 * M[i, j]
            text = "not\ntrained" if untrained[i, j] else "–" if math.isnan(v) else f"{v:.1f}"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=8 if untrained[i, j] else 11,
                color="0.35"
                if untrained[i, j]
                else "black" if math.isnan(v) or v > 55 else "white",
            )
    ax.set_xticks(range(n), tasks)
    ax.set_yticks(range(n), tasks)
    ax.set_xlabel("accuracy on task j")
    ax.set_ylabel("after training task i")
    ax.set_title("Accuracy matrix R[i, j] (test accuracy, %)")
    fig.colorbar(im, ax=ax, label="test accuracy (%)", shrink=0.85)
    return fig


def plot_accuracy_overlay(
    histories: Mapping[str, object], chance: float | None = None
) -> Figure:
    """Several runs of the same tasks in one plot: colour (and marker) per task, line style
    per run, e.g. ``{"plain SGD": plain, "EWC λ = 2000": ewc}`` (lesson 02).

    Parameters
    ----------
    histories : dict of str to History or History dict
        Runs to overlay, by label; all with the same tasks and task boundaries.
    chance : float, optional
        Accuracy of guessing, drawn as a dotted line.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(histories, Mapping) or not 1 <= len(histories) <= 4:
        raise ValueError(f"histories must be a dict of 1 to 4 runs, got {histories!r}")
    runs = {str(label): history_dict(h) for label, h in histories.items()}
    first = next(iter(runs.values()))
    for label, d in runs.items():
        if list(d["tasks"]) != list(first["tasks"]) or d["boundaries"] != first["boundaries"]:
            raise ValueError(f"run {label!r} has other tasks or boundaries than the first run")
    fig = new_figure((WIDTH, 4.8))
    ax = fig.add_subplot()
    bounds = list(first["boundaries"])
    end = max([*[d["steps"][-1] for d in runs.values() if d["steps"]], *bounds[-1:], 1])
    for i, (lo, hi) in enumerate(zip(bounds, [*bounds[1:], end], strict=False)):
        ax.axvspan(lo, hi, color="0.88" if i % 2 == 0 else "0.96", lw=0, zorder=0)
        ax.text((lo + hi) / 2, 101, f"training {first['tasks'][i]}", ha="center", va="bottom")
    styles = ("--", "-", ":", "-.")
    for (label, d), style in zip(runs.items(), styles, strict=False):
        for j, task in enumerate(d["tasks"]):
            ax.plot(
                d["steps"],
                100 * np.asarray(d["accuracy"][task], float),
                color=TASK_COLOURS[j % len(TASK_COLOURS)],
                ls=style,
                lw=2,
                marker=MARKERS[j % len(MARKERS)],
                markevery=max(1, len(d["steps"]) // 20),
                ms=4.5,
                label=f"{label}: task {task}",
            )
    chance_line(ax, chance)
    ax.set_xlim(min([*bounds[:1], 0]), end)
    ax.set_ylim(0, 108)
    ax.set_yticks(range(0, 101, 20))
    ax.set_xlabel("training step (mini-batches)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Test accuracy while training tasks in sequence: " + " vs ".join(runs), pad=18)
    fig.legend(loc="outside lower center", ncols=3, fontsize=9)
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
    fig = new_figure((WIDTH, 4.2))
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
