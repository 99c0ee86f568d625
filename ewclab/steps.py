"""The named steps of a task sequence, shared by :func:`ewclab.experiment.run_plan` and
:func:`ewclab.experiment.sweep`.

One task is: :func:`train_task` (``partial_fit`` on its batches, offered to the learner's
buffer as they pass), :func:`finish_task` (its row of the accuracy matrix), then
:func:`consolidate_task` (the method's importance, the Fisher or SI's or MAS's, anchored
on the samples the buffer kept). A :class:`~ewclab.methods.TaskRun` carries what a method
and a scenario add to a task (replay, SI's path integral, the task's head). After
task A, :func:`cache_entry` is what a :class:`~ewclab.cache.TaskACache` keeps and
:func:`restore` starts a later run from it.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from ewclab.cache import Entry
from ewclab.fisher import fisher_diagonal
from ewclab.history import History
from ewclab.learner import Learner
from ewclab.methods import TaskRun
from ewclab.plan import Plan
from ewclab.training import Point, TaskResult, evaluate, percentages, train_on_task

logger = logging.getLogger("ewclab.experiment")


@dataclass(frozen=True)
class At:
    """Where a run stands: the next task to train, the global step, the last loss."""

    task: int
    step: int
    loss: float


def train_task(p: Plan, i: int, learner: Learner, history: History, at: At,
           callback: Callable[[Point], None] | None, stop: Callable[[], bool] | None,
           run: TaskRun | None = None) -> TaskResult:
    """Task ``i``: ``partial_fit`` on its shuffled batches, offered to ``learner.buffer`` as
    they pass. Dropout's masks come from torch's global generator: it is seeded with the
    task's seed inside :func:`torch.random.fork_rng`, so the run is reproducible and the
    caller's generator is left as it was.

    ``run`` (default: a new one) is the method's and the scenario's part of the task
    (:class:`~ewclab.methods.TaskRun`: replayed samples, SI's path integral, the task's
    head); hand the same one to :func:`consolidate_task`."""
    run = TaskRun(p, i, learner) if run is None else run
    task = p.tasks[i]
    history.start_task(task.name, at.step)
    logger.info("task %d/%d %r: %g epoch(s) from step %d (%s, λ = %g)",
                i + 1, len(p.tasks), task.name, p.epochs[i], at.step, p.method, p.lam)
    if i == 0:
        history.record(at.step, evaluate(learner, p.tasks, p.eval_samples))
    with torch.random.fork_rng(devices=cuda_devices(learner)), run.routed():
        torch.manual_seed(p.task_seed(i))
        return train_on_task(
            learner, task.name, task, epochs=p.epochs[i], buffer=learner.buffer,
            eval_tasks=p.tasks, eval_every=p.eval_every, callback=callback, stop=stop,
            batch_size=p.batch_size, seed=p.task_seed(i), eval_samples=p.eval_samples,
            history=history, start_step=at.step, fit_step=run.step,
        )


def finish_task(p: Plan, i: int, learner: Learner, history: History, result: TaskResult) -> None:
    """Record task ``i``'s row of the accuracy matrix (on the full test sets)."""
    final = result.points[-1].accuracies
    if p.eval_samples is not None:
        final = evaluate(learner, p.tasks)
    history.finish_task(p.tasks[i].name, final)
    logger.info("after task %r: test accuracy %s", p.tasks[i].name, percentages(final))


def consolidate_task(
    p: Plan, i: int, learner: Learner, history: History, run: TaskRun | None = None
) -> dict[str, torch.Tensor]:
    """Anchor task ``i`` on the samples its buffer kept, with the method's importance:
    ``learner.consolidate`` (the Fisher) for EWC, online EWC and L2; SI's path integral
    (from ``run``, the :class:`~ewclab.methods.TaskRun` that trained the task) or MAS's
    output sensitivity, handed to ``learner.ewc.add_task``. Plain SGD and replay anchor
    nothing. The Fisher is measured for every method and kept in ``history.fisher`` (the
    plots' and the stability check's quantity); what the penalty was given goes to
    ``history.importance``. Returns the Fisher. Task-IL: all of it on the task's head."""
    name = p.tasks[i].name
    X, y = learner.buffer.get(name)
    if run is None and p.importance == "si":
        raise ValueError(f"SI anchors the path integral tracked while task {name!r} trained: "
                         "pass the TaskRun that train_task used")
    run = TaskRun(p, i, learner) if run is None else run
    with run.routed():
        if p.importance == "fisher":
            fisher_i = learner.consolidate(X, y)
            importance = fisher_i
        else:
            fisher_i = fisher_diagonal(learner, X, y, kind=p.fisher,
                                       generator=learner.shuffle_rng)
            importance = run.importance(X) if p.importance is not None else None
            if importance is not None:
                learner.ewc.add_task(importance)
    logger.info("Fisher of %r: %s, on %d samples%s", name, p.fisher, len(y),
                f"; {p.importance} importance anchored" if importance is not None else "")
    history.fisher[name] = clone(fisher_i)
    if importance is not None:
        history.importance[name] = clone(importance)
    return fisher_i


def cache_entry(learner: Learner, fisher_a: Mapping[str, torch.Tensor], history: History,
           at: At) -> Entry:
    """The task-A cache entry: a copy of the learner before its consolidation (the term
    depends on the method; the Fisher does not), task A's Fisher and history."""
    saved = copy.deepcopy(learner)
    saved.ewc.reset()
    importance = history.importance.get(history.tasks[0])
    return Entry(saved, clone(fisher_a), history.to_dict(), at.step, at.loss,
                 None if importance is None else clone(importance))


def restore(p: Plan, entry: Entry, history: History,
             callback: Callable[[Point], None] | None) -> tuple[Learner, At]:
    """A copy of the cached learner after task A, given this plan's method and task A's
    cached Fisher; task A's part of the history replayed."""
    learner = copy.deepcopy(entry.model)
    p.configure(learner)
    name = p.tasks[0].name
    if p.mode is not None:
        importance = entry.fisher if entry.importance is None else entry.importance
        learner.ewc.add_task(clone(importance))
        history.importance[name] = clone(importance)
    replay_history(history, entry.history)
    history.fisher[name] = clone(entry.fisher)
    logger.info("task 1/%d %r: restored from the task-A cache at step %d",
                len(p.tasks), name, entry.step)
    if callback is not None:
        callback(Point(name, entry.step, entry.loss, last_point(history), history))
    return learner, At(1, entry.step, entry.loss)


def cuda_devices(learner: Learner) -> list[int]:
    return [learner.device.index or 0] if learner.device.type == "cuda" else []


def check_stable(learner: Learner, next_task: str) -> None:
    """Refuse to train ``next_task`` when the penalty would make SGD diverge on it."""
    try:
        learner.check_stability()
    except ValueError as err:  # a DivergenceError: say which task it protects
        raise type(err)(f"before training task {next_task!r}: {err}") from None


def replay_history(history: History, saved: Mapping) -> None:
    """Copy task A's part of a saved history (its first task) into ``history``."""
    name = history.tasks[0]
    history.start_task(name, saved["boundaries"][0])
    for k, s in enumerate(saved["steps"]):
        history.record(s, {t: saved["accuracy"][t][k] for t in history.tasks})
    history.finish_task(name, dict(zip(history.tasks, saved["accuracy_matrix"][0], strict=True)))


def clone(fisher: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in fisher.items()}


def last_point(history: History) -> dict[str, float]:
    return {t: history.accuracy[t][-1] for t in history.tasks}
