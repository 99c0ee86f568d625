"""Train K copies of a learner on one task side by side, evaluating as they go.

:func:`train_side_by_side` is :func:`ewclab.training.train_on_task` for a
:class:`~ewclab.side_by_side.SideBySide`: the same shuffled batches (one
``partial_fit`` of all K copies each), the same buffer offering (the first pass over the
task), the same evaluation points, recorded into one History per copy.
:func:`ewclab.experiment.sweep` calls it once per task after the first.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ewclab.buffer import TaskBuffer
from ewclab.data import Task, batchify
from ewclab.history import History
from ewclab.side_by_side import SideBySide
from ewclab.training import Point, TaskResult, steps_for
from ewclab.validation import check_int

__all__ = ["SweepPoint", "evaluate_side_by_side", "train_side_by_side"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepPoint:
    """One evaluation point of a sweep, as handed to its ``callback``.

    Attributes
    ----------
    task : str
        The task being trained.
    step : int
        Global optimisation step.
    losses : tuple of float
        Each copy's training loss at the last step (NaN before the first).
    accuracies : list of dict of str to float
        Each copy's test accuracy per task, in [0, 1] (one dict per λ, in order).
    histories : list of History
        The copies' histories, already holding this point.
    """

    task: str
    step: int
    losses: tuple[float, ...]
    accuracies: list[dict[str, float]]
    histories: list[History]


def evaluate_side_by_side(
    side: SideBySide, tasks: Sequence[Task], samples: int | None = None
) -> list[dict[str, float]]:
    """Each copy's test accuracy on each task (its first ``samples`` test images, or all):
    one dict per copy, as :func:`ewclab.training.evaluate` gives for one learner."""
    scores = {t.name: side.score(t.X_test[:samples], t.y_test[:samples])
              for t in tasks}  # task -> (K,)
    return [{name: float(s[k]) for name, s in scores.items()} for k in range(len(side))]


def train_side_by_side(
    side: SideBySide,
    task: Task,
    epochs: float,
    histories: Sequence[History],
    *,
    buffer: TaskBuffer | None = None,
    eval_tasks: Sequence[Task] = (),
    eval_every: int | None = None,
    callback: Callable[[SweepPoint], None] | None = None,
    stop: Callable[[], bool] | None = None,
    batch_size: int = 64,
    seed: int | None = None,
    eval_samples: int | None = None,
    start_step: int = 0,
) -> list[TaskResult]:
    """Train every copy of ``side`` on ``task``; return one TaskResult per copy.

    Parameters
    ----------
    side : SideBySide
        The K copies, trained in place (call ``side.write_back()`` afterwards to get the
        learners).
    task : Task
        Its training set is shuffled into batches of ``batch_size`` with ``seed`` (as
        :func:`~ewclab.training.train_on_task` does for one learner).
    epochs : float
        Passes over the training set.
    histories : sequence of History
        One per copy; every evaluation point is recorded in copy k's history.
    buffer : TaskBuffer, optional
        Offered every batch of the first pass (all copies see the same batches, so one
        buffer serves them all).
    eval_tasks, eval_every, eval_samples
        As for :func:`~ewclab.training.train_on_task`: about 20 points per task by default.
    callback : callable, optional
        Called with a :class:`SweepPoint` after each evaluation.
    stop : callable, optional
        Polled before each step; True stops after the step in progress.
    start_step : int
        Global step before this task.

    Returns
    -------
    list of TaskResult
        One per copy (``loss`` is that copy's last loss; ``points`` its evaluations).
    """
    if len(histories) != len(side):
        raise ValueError(f"histories must hold one History per copy ({len(side)}), "
                         f"got {len(histories)}")
    n_steps = steps_for(task, epochs, batch_size)
    first_pass = steps_for(task, 1, batch_size)
    every = max(1, round(n_steps / 20)) if eval_every is None else eval_every
    check_int(every, "eval_every", low=1)
    batches = batchify(task.X_train, task.y_train, batch_size=batch_size,
                       shuffle=True, seed=seed)
    points: list[list[Point]] = [[] for _ in range(len(side))]
    losses = (math.nan,) * len(side)
    step, stopped = start_step, False

    def evaluate_point() -> None:
        accuracies = evaluate_side_by_side(side, eval_tasks, eval_samples)
        for k, (history, acc) in enumerate(zip(histories, accuracies, strict=True)):
            history.record(step, acc)
            points[k].append(Point(task.name, step, losses[k], acc, history))
        logger.debug("step %d (training %r): losses %s", step, task.name, losses)
        if callback is not None:
            callback(SweepPoint(task.name, step, losses, accuracies, list(histories)))

    for k in range(1, n_steps + 1):
        if stop is not None and stop():
            stopped = True
            break
        X, y = next(batches)
        losses = tuple(float(v) for v in side.partial_fit(X, y))
        step += 1
        if buffer is not None and k <= first_pass:
            buffer.add(task.name, X, y)
        if eval_tasks and (k % every == 0 or k == n_steps):
            evaluate_point()
    if stopped and eval_tasks and (not points[0] or points[0][-1].step != step):
        evaluate_point()
    return [TaskResult(task.name, step - start_step, step, losses[k], stopped, points[k])
            for k in range(len(side))]
