"""Train a learner on one task with ``partial_fit``, evaluating as it goes.

:func:`train_on_task` is the seed's loop (a batch, one ``partial_fit``, now and then an
evaluation) with the samples a later ``consolidate`` needs kept in a buffer as the stream
passes; :func:`ewclab.experiment.run_sequence` calls it once per task.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ewclab.buffer import TaskBuffer
from ewclab.data import Task, batchify
from ewclab.heads import task_head
from ewclab.history import History
from ewclab.learner import Learner
from ewclab.settings import DEMO
from ewclab.validation import check_int, check_real

__all__ = ["Point", "TaskResult", "evaluate", "percentages", "steps_for", "train_on_task"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Point:
    """One evaluation point, as handed to a ``callback``.

    Attributes
    ----------
    task : str
        The task being trained.
    step : int
        Global optimisation step (steps over all tasks so far).
    loss : float
        Training loss of the last step (NaN before the first step).
    accuracies : dict of str to float
        Test accuracy of each evaluated task, in [0, 1].
    history : History or None
        The run's history (already holding this point) when training records one.
    """

    task: str
    step: int
    loss: float
    accuracies: dict[str, float]
    history: History | None = None


@dataclass(frozen=True)
class TaskResult:
    """What :func:`train_on_task` did: steps run, global step reached, last loss, stopped."""

    task: str
    steps: int
    step: int
    loss: float
    stopped: bool
    points: list[Point] = field(default_factory=list)


def steps_for(task: Task, epochs: float, batch_size: int) -> int:
    """Optimisation steps for ``epochs`` passes over ``task``'s training set."""
    check_real(epochs, "epochs", low=0, low_open=True)
    check_int(batch_size, "batch_size", low=1)
    return max(1, math.ceil(epochs * len(task.x_train) / batch_size))


def evaluate(model: Learner, tasks: Iterable[Task], samples: int | None = None) -> dict[str, float]:
    """Test accuracy of ``model`` on each task (its first ``samples`` test images, or all).

    A multi-head model answers each task with that task's head (:func:`~ewclab.heads.task_head`:
    the task label is given at test time in task-incremental learning).
    """
    scores = {}
    for t in tasks:
        with task_head(model, t):
            scores[t.name] = float(model.score(t.X_test[:samples], t.y_test[:samples]))
    return scores


def train_on_task(
    model: Learner,
    name: str,
    batches: Task | Iterator[tuple[Any, Any]],
    steps: int | None = None,
    epochs: float | None = None,
    buffer: TaskBuffer | None = None,
    eval_tasks: Sequence[Task] = (),
    eval_every: int | None = None,
    callback: Callable[[Point], None] | None = None,
    stop: Callable[[], bool] | None = None,
    *,
    batch_size: int = DEMO.batch_size,
    seed: int | None = None,
    eval_samples: int | None = None,
    history: History | None = None,
    start_step: int = 0,
    fit_step: Callable[[Any, Any], float] | None = None,
) -> TaskResult:
    """Train ``model`` on one task with ``partial_fit``, evaluating as it goes.

    Parameters
    ----------
    model : Learner
        Trained in place, one ``partial_fit`` per batch.
    name : str
        The task's name (for the buffer, the points and the history).
    batches : Task or iterator of (X, y)
        A :class:`~ewclab.data.Task` (its training set is shuffled into batches of
        ``batch_size`` with ``seed``) or an endless iterator of batches such as
        :func:`~ewclab.data.batchify`'s.
    steps : int, optional
        Number of ``partial_fit`` steps. Give ``steps`` or ``epochs``, not both.
    epochs : float, optional
        Passes over the task's training set (needs ``batches`` to be a Task); one
        pass when neither ``steps`` nor ``epochs`` is given for a Task.
    buffer : TaskBuffer, optional
        Every batch is offered to it under ``name`` as it streams past (a Task's during the
        first pass over its training set, so no sample is offered twice): the reservoir
        keeps the samples a later ``consolidate`` needs, e.g. ``model.buffer``.
    eval_tasks : sequence of Task
        Tasks whose test accuracy is measured every ``eval_every`` steps and after the
        last step.
    eval_every : int, optional
        Steps between evaluations; default: about 20 points per task.
    callback : callable, optional
        Called with a :class:`Point` after each evaluation (live plots subscribe here).
    stop : callable, optional
        Polled before each step; when it returns True training stops after the step in
        progress, so the model is always left between two complete steps.
    batch_size, seed
        Batching of a Task (ignored for an iterator).
    eval_samples : int, optional
        Evaluate on the first ``eval_samples`` test images of each task (default all).
    history : History, optional
        Each evaluation point is also recorded here (``eval_tasks`` must then be the
        history's tasks).
    start_step : int
        Global step before this task (steps are numbered across a sequence).
    fit_step : callable, optional
        ``fit_step(X, y) -> loss`` trains one step on the task's batch instead of
        ``model.partial_fit(X, y)``: a method's additions go here (replayed samples mixed
        in, SI's path integral updated after the step; see :class:`ewclab.methods.TaskRun`).
        The buffer is offered the task's own batch ``(X, y)``, never what ``fit_step``
        adds to it.

    Returns
    -------
    TaskResult

    Raises
    ------
    ValueError, TypeError
        On inconsistent ``steps``/``epochs`` or bad numbers, before any training.
    """
    if (steps is None) == (epochs is None) and not (
        steps is None and isinstance(batches, Task)
    ):
        raise ValueError(
            f"give exactly one of steps or epochs, got steps={steps!r}, epochs={epochs!r}"
        )
    first_pass = None  # steps whose batches are new to the buffer; None: every step
    if isinstance(batches, Task):
        n_steps = steps_for(batches, 1 if epochs is None else epochs, batch_size)
        first_pass = steps_for(batches, 1, batch_size)
        if steps is not None:
            n_steps = check_int(steps, "steps", low=1)
        batches = batchify(
            batches.X_train, batches.y_train, batch_size=batch_size, shuffle=True,
            seed=seed,
        )
    elif epochs is not None:
        raise TypeError("epochs needs batches to be a Task; give steps for an iterator")
    else:
        n_steps = check_int(steps, "steps", low=1)
    every = max(1, round(n_steps / 20)) if eval_every is None else eval_every
    check_int(every, "eval_every", low=1)

    points: list[Point] = []
    loss = math.nan
    step = start_step
    stopped = False
    for k in range(1, n_steps + 1):
        if stop is not None and stop():
            stopped = True
            break
        X, y = next(batches)
        loss = float(model.partial_fit(X, y) if fit_step is None else fit_step(X, y))
        step += 1
        if buffer is not None and (first_pass is None or k <= first_pass):
            buffer.add(name, X, y)
        if eval_tasks and (k % every == 0 or k == n_steps):
            points.append(_evaluate_point(model, name, step, loss, eval_tasks, eval_samples,
                                          history, callback))
    if stopped and eval_tasks and (not points or points[-1].step != step):
        points.append(
            _evaluate_point(model, name, step, loss, eval_tasks, eval_samples, history, callback)
        )
    return TaskResult(name, step - start_step, step, loss, stopped, points)


def _evaluate_point(model, name, step, loss, eval_tasks, eval_samples, history, callback):
    accuracies = evaluate(model, eval_tasks, eval_samples)
    logger.debug("step %d (training %r): loss %.4f, test accuracy %s", step, name, loss,
                 percentages(accuracies))
    if history is not None:
        history.record(step, accuracies)
    point = Point(name, step, loss, accuracies, history)
    if callback is not None:
        callback(point)
    return point


def percentages(accuracies: Mapping[str, float]) -> str:
    """``"mnist 97.1%, fashion-mnist 12.0%"``, for the log."""
    return ", ".join(f"{name} {100 * acc:.1f}%" for name, acc in accuracies.items())

