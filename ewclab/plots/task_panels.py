"""Figures of a long task sequence, in the shape of Fig. 2A and 2B of Kirkpatrick et al. 2017
(lesson 05): each task's test accuracy over the whole sequence in a small panel of its own,
one line per method, and the average accuracy over the tasks trained so far.

Plain data in (:class:`~ewclab.history.History` objects or their ``to_dict()``), a
pyplot-free :class:`~matplotlib.figure.Figure` out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ewclab.metrics import average_accuracy
from ewclab.plots.style import (
    METHOD_COLOURS,
    OKABE_ITO,
    WIDTH,
    chance_line,
    history_dict,
    new_figure,
)

__all__ = ["average_so_far", "plot_average_so_far", "plot_task_panels"]

#: Line style and marker of the k-th run: runs stay apart without colour.
RUN_STYLES = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"))
#: Colours for runs whose method has none of its own in :data:`METHOD_COLOURS`.
RUN_COLOURS = tuple(OKABE_ITO[c] for c in ("black", "orange", "bluish_green", "blue"))


def _runs(histories: object) -> dict[str, dict]:
    """Check ``histories`` (1 to 4 runs of the same tasks and boundaries) as plain data."""
    if not isinstance(histories, Mapping) or not 1 <= len(histories) <= len(RUN_STYLES):
        raise ValueError(f"histories must be a dict of 1 to {len(RUN_STYLES)} runs, "
                         f"got {histories!r}")
    runs = {str(label): history_dict(h) for label, h in histories.items()}
    first = next(iter(runs.values()))
    for label, d in runs.items():
        if list(d["tasks"]) != list(first["tasks"]) or list(d["boundaries"]) != list(
            first["boundaries"]
        ):
            raise ValueError(f"run {label!r} has other tasks or boundaries than the first run")
    return runs


def _colours(runs: Mapping[str, dict]) -> list[str]:
    """The method's colour for each run (plain SGD black, L2 orange, EWC green) when every
    run has a distinct method with a colour; otherwise one palette colour per run."""
    methods = [d["settings"].get("method") for d in runs.values()]
    if all(m in METHOD_COLOURS for m in methods) and len(set(methods)) == len(methods):
        return [METHOD_COLOURS[m] for m in methods]
    return list(RUN_COLOURS[: len(runs)])


def plot_task_panels(
    histories: Mapping[str, object], chance: float | None = None, columns: int = 5
) -> Figure:
    """One panel per task: its test accuracy over the whole sequence, one line per run.

    The shape of Fig. 2A of Kirkpatrick et al. (2017), which shows three permuted-MNIST
    tasks for plain SGD, L2 and EWC; here any number of tasks (lesson 05: ten). In panel
    ``j`` the span where task ``j`` is trained is shaded and its curve starts at that span
    (before it, the task was never trained: its accuracy is a guess, not a memory). The x
    axis is labelled by the task being trained.

    Parameters
    ----------
    histories : dict of str to History or History dict
        1 to 4 runs of the same tasks with the same task boundaries, by label (e.g.
        ``{"plain SGD": sgd, "L2": l2, "EWC": ewc}``). A run's colour is its method's
        (:data:`~ewclab.plots.style.METHOD_COLOURS`) when every run has a distinct method
        that has one; its line style and marker follow its place in the dict.
    chance : float, optional
        Accuracy of guessing (e.g. 0.1 for ten classes), a dotted line in every panel.
    columns : int, default 5
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure
    """
    runs = _runs(histories)
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise ValueError(f"columns must be an int >= 1, got {columns!r}")
    first = next(iter(runs.values()))
    tasks, bounds = list(first["tasks"]), list(first["boundaries"])
    end = max([*(d["steps"][-1] for d in runs.values() if d["steps"]), *bounds[-1:], 1])
    spans = list(zip(bounds, [*bounds[1:], end], strict=False))  # (start, end) per started task
    columns = min(columns, len(tasks))
    rows = math.ceil(len(tasks) / columns)
    fig = new_figure((WIDTH, 1.2 + 1.85 * rows))
    axes = fig.subplots(rows, columns, sharex=True, sharey=True, squeeze=False).flat
    colours = _colours(runs)
    for j, (ax, task) in enumerate(zip(axes, tasks, strict=False)):
        if j < len(spans):
            ax.axvspan(*spans[j], color="0.86", lw=0, zorder=0)
        for b in bounds[1:]:
            ax.axvline(b, color="0.8", lw=0.6, zorder=0)
        for (label, d), colour, (style, marker) in zip(runs.items(), colours, RUN_STYLES,
                                                       strict=False):
            steps = np.asarray(d["steps"], float)
            acc = 100 * np.asarray(d["accuracy"][task], float)
            shown = steps >= spans[j][0] if j < len(spans) else np.zeros(steps.shape, bool)
            ax.plot(steps[shown], acc[shown], color=colour, ls=style, lw=1.6, marker=marker,
                    markevery=max(1, int(shown.sum()) // 6), ms=3.5, label=label)
        chance_line(ax, chance, lw=1.2, label=False)
        ax.set_title(f"task {j + 1}: {task}" if task != str(j + 1) else f"task {j + 1}",
                     fontsize=8.5)
        ax.set_ylim(0, 101)
        ax.set_yticks(range(0, 101, 25))
        ax.tick_params(labelsize=7.5)
    for ax in axes[len(tasks):]:
        ax.set_visible(False)
    if spans:
        centres = [(lo + hi) / 2 for lo, hi in spans]
        axes[0].set_xticks(centres, [str(k + 1) for k in range(len(spans))])
        axes[0].set_xlim(spans[0][0], end)
    for k, ax in enumerate(axes[: len(tasks)]):
        if k + columns >= len(tasks):  # nothing drawn below it: label its x axis
            ax.set_xlabel("task being trained", fontsize=8.5)
            ax.xaxis.set_tick_params(labelbottom=True)
    fig.supylabel("test accuracy (%)", fontsize=9.5)
    fig.suptitle("Each task's test accuracy over the sequence")
    handles = [Line2D([], [], color=c, ls=s, marker=m, lw=1.6, ms=4)
               for c, (s, m) in zip(colours, RUN_STYLES, strict=False)]
    labels = list(runs)
    handles.append(Patch(color="0.86"))
    labels.append("while this task is trained")
    if chance is not None:
        handles.append(Line2D([], [], color="0.45", ls=":", lw=1.2))
        labels.append(f"chance ({100 * chance:g} %)")
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5),
               fontsize=9)
    return fig


def average_so_far(history: object) -> list[float]:
    """Mean test accuracy over the tasks trained so far, after each task (Fig. 2B's y axis).

    Entry ``t`` (from 0) is ``mean(R[t, :t+1])``: :func:`ewclab.metrics.average_accuracy`
    of the first ``t + 1`` tasks, measured right after task ``t`` was trained. Rows not
    reached (a stopped run: NaN) end the list.

    Parameters
    ----------
    history : History, History dict or array_like of shape (T, T)
        A run or its accuracy matrix ``R`` (fractions; None or NaN where unknown).

    Returns
    -------
    list of float
        Fractions, one per finished task.
    """
    R = history
    if hasattr(R, "snapshot") or isinstance(R, Mapping):
        R = history_dict(R)["accuracy_matrix"]
    M = np.array([[np.nan if x is None else x for x in row] for row in R], dtype=float)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"expected a square (T, T) accuracy matrix, got shape {M.shape}")
    out = []
    for t in range(M.shape[0]):
        if not np.isfinite(M[t, : t + 1]).all():
            break
        out.append(average_accuracy(M[: t + 1, : t + 1]))
    return out


def plot_average_so_far(
    histories: Mapping[str, object],
    reference: Mapping[str, float] | None = None,
    chance: float | None = None,
) -> Figure:
    """Average test accuracy over the tasks trained so far, against their number.

    The shape of Fig. 2B of Kirkpatrick et al. (2017) (EWC and SGD with dropout over up to
    ten permuted-MNIST tasks, a dashed line at single-task performance); here any runs,
    each point :func:`average_so_far`.

    Parameters
    ----------
    histories : dict of str to History or History dict
        1 to 4 runs of the same tasks, by label (colours and markers as in
        :func:`plot_task_panels`).
    reference : dict of str to float, optional
        Label → accuracy (fraction), each drawn as a dashed horizontal line (e.g. the first
        task right after it was learned).
    chance : float, optional
        Accuracy of guessing, a dotted line.

    Returns
    -------
    matplotlib.figure.Figure
    """
    runs = _runs(histories)
    reference = {} if reference is None else reference
    if not isinstance(reference, Mapping):
        raise ValueError(f"reference must be a dict of label -> accuracy, got {reference!r}")
    for label, value in reference.items():
        if not (isinstance(value, int | float) and 0 <= value <= 1):
            raise ValueError(f"reference[{label!r}] must be a fraction in [0, 1], got {value!r}")
    fig = new_figure((WIDTH * 0.7, 4.0))
    ax = fig.add_subplot()
    for (label, d), colour, (style, marker) in zip(runs.items(), _colours(runs), RUN_STYLES,
                                                   strict=False):
        means = average_so_far(d)
        ax.plot(range(1, len(means) + 1), [100 * m for m in means], color=colour, ls=style,
                marker=marker, lw=2, ms=6, label=label)
    for k, (label, value) in enumerate(reference.items()):
        ax.axhline(100 * value, color="0.35", ls=(0, (5, 2 + 2 * k)), lw=1.2, label=label)
    chance_line(ax, chance, lw=1.2)
    n = len(next(iter(runs.values()))["tasks"])
    ax.set_xticks(range(1, n + 1))
    ax.set_xlim(0.7, n + 0.3)
    ax.set_ylim(0, 101)
    ax.set_xlabel("number of tasks trained")
    ax.set_ylabel("mean test accuracy over them (%)")
    ax.set_title("Average accuracy over the tasks trained so far")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="lower left", fontsize=9, framealpha=0.9)
    return fig
