"""Train a model on a sequence of tasks, with or without EWC, and record what happens.

>>> from ewclab.experiment import run_sequence
>>> history = run_sequence("mnist->fashion", method="ewc", epochs=2)   # doctest: +SKIP
>>> history.accuracy_matrix                                            # doctest: +SKIP

``run_sequence`` runs the API the lab teaches, task after task: ``partial_fit`` on each
batch (:func:`~ewclab.training.train_on_task`, re-exported here), the batches offered to
``learner.buffer`` as they pass, then ``learner.consolidate`` on the samples it kept; it
returns a :class:`ewclab.history.History`. Its settings are resolved and checked first by
:func:`ewclab.plan.plan`.
``DEFAULTS`` holds the demo's settings, chosen by measurement (benchmarks/RESULTS.md), for
the CLI, the notebooks and the widgets alike; every other (scenario, model, method) gets
its λ, learning rate, epochs and width from :func:`ewclab.settings.defaults`. Training task
A does not depend on λ or on the later tasks' settings, so a
:class:`~ewclab.cache.TaskACache` lets a re-run with a new λ skip it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ewclab import steps
from ewclab.cache import Entry, TaskACache, fingerprint
from ewclab.cache import key as cache_key
from ewclab.data import Task
from ewclab.heads import MultiHead
from ewclab.history import History
from ewclab.learner import Learner
from ewclab.methods import TaskRun
from ewclab.plan import MODELS, ModelSpec, Plan, make_model, plan
from ewclab.settings import DEMO, METHODS, defaults
from ewclab.side_by_side import SideBySide
from ewclab.sweep_training import SweepPoint, train_side_by_side
from ewclab.training import (
    Point,
    TaskResult,
    evaluate,
    steps_for,
    train_on_task,
)
from ewclab.validation import FLOAT32_MAX, check_option, check_real

__all__ = [
    "DEFAULTS",
    "METHODS",
    "MODELS",
    "Point",
    "TaskACache",
    "TaskResult",
    "evaluate",
    "make_model",
    "plan",
    "run_plan",
    "run_sequence",
    "steps_for",
    "sweep",
    "train_on_task",
]

logger = logging.getLogger(__name__)

#: The demo's settings (``ewclab demo``, notebooks, widgets) as a dict, for code that reads
#: ``DEFAULTS["lam"]``; the table they come from, with a reason for each value, is
#: :mod:`ewclab.settings` (``defaults(tasks, model, method)``).
DEFAULTS: dict[str, Any] = {
    "tasks": DEMO.tasks,
    "model": DEMO.model,
    "width": DEMO.width,
    "lr": DEMO.lr,
    "optimizer": DEMO.optimizer,
    "batch_size": DEMO.batch_size,
    "epochs": DEMO.epochs,
    "method": DEMO.method,
    "lam": DEMO.lam,
    "gamma": DEMO.gamma,
    "fisher": DEMO.fisher,
    "fisher_samples": DEMO.fisher_samples,
    "seed": DEMO.seed,
}

#: Default λ per method for the demo's scenario and model (others: :func:`settings.defaults`).
DEFAULT_LAM = {m: defaults(DEMO.tasks, DEMO.model, m).lam for m in METHODS}


def run_sequence(
    tasks: str | Sequence[Task],
    model: ModelSpec = DEFAULTS["model"],
    method: str = DEFAULTS["method"],
    lam: float | None = None,
    epochs: float | Sequence[float] | None = None,
    fisher: str | None = None,
    fisher_samples: int | None = None,
    seed: int = DEFAULTS["seed"],
    callback: Callable[[Point], None] | None = None,
    stop: Callable[[], bool] | None = None,
    *,
    width: float | None = None,
    lr: float | None = None,
    optimizer: str | None = None,
    batch_size: int | None = None,
    gamma: float = DEFAULTS["gamma"],
    eval_every: int | None = None,
    eval_samples: int | None = None,
    cache: TaskACache | None = None,
    source: str = "bundled",
    root: str | None = None,
    replay_samples: int | None = None,
    learner: Learner | None = None,
) -> History:
    """Train on each task in turn, consolidating after each, evaluating all throughout.

    Parameters
    ----------
    tasks : str or sequence of Task
        Tasks in training order, or a scenario name for
        :func:`~ewclab.scenarios.get_scenario` (read from ``source``/``root``).
    model : {"testnet", "mlp", "alexnet"} or callable
        Model kind (built with ``width``, ``lr``, ``optimizer``) or a callable returning
        a fresh :class:`~ewclab.learner.Learner`.
    method : {"sgd", "l2", "ewc", "online-ewc", "si", "mas", "replay"}
        ``"sgd"``: plain training (no penalty: catastrophic forgetting); ``"l2"``: the
        penalty with F = 1; ``"ewc"``: one EWC term per task (Kirkpatrick et al. 2017);
        ``"online-ewc"``: one running term decayed by ``gamma`` (Schwarz et al. 2018);
        ``"si"`` / ``"mas"``: the same penalty (online mode) with SI's path integral
        (Zenke et al. 2017) or MAS's output sensitivity (Aljundi et al. 2018) as the
        importance; ``"replay"``: no penalty, each step mixes in as many stored samples of
        earlier tasks (see :class:`ewclab.methods.TaskRun`). Split MNIST in its
        task-incremental scenario (``"split:task"``) trains a
        :class:`~ewclab.heads.MultiHead`, each task on its own head (lesson 07).
    lam : float, optional
        EWC strength λ, penalty = λ/2 Σ F_i (θ_i - θ*_i)²; ignored (0) for ``"sgd"``.
        Default (like every setting below given as None): the row of
        :func:`ewclab.settings.defaults` for this scenario, model and method (a callable
        ``model`` uses the MLP's row). A λ that the stability bound predicts will make
        SGD diverge is refused after the task that makes it so, before the next one trains
        (see :meth:`~ewclab.learner.Learner.check_stability`).
    epochs : float or sequence of float, optional
        Passes over each task's training set: one number for all tasks or one per task.
    fisher : {"empirical", "exact", "sampled"}, optional
        Fisher kind (see :func:`ewclab.fisher.fisher_diagonal`).
    fisher_samples : int, optional
        Training samples of each task kept to compute its Fisher.
    seed : int
        In [0, 2**64); seeds the model's initialisation, every task's batch order and
        the sampled Fisher's labels (task i uses seed + i, wrapped to 64 bits): a run is
        deterministic for a seed on CPU.
    callback : callable, optional
        Called with a :class:`Point` (holding ``history``) after each evaluation.
    stop : callable, optional
        Polled before each step; True ends the run after the step in progress. The
        returned history then ends at that step and the unfinished rows of its
        accuracy matrix stay NaN.
    width, lr, optimizer, batch_size : optional
        Model and training settings (default: see ``lam``).
    gamma : float
        Decay of the online-EWC term.
    eval_every, eval_samples
        See :func:`train_on_task`.
    cache : TaskACache, optional
        Reuse (or store) the model trained on the first task.
    source, root
        Data for a scenario name.
    replay_samples : int, optional
        ``"replay"``: samples of each task kept in ``learner.buffer`` and replayed.
    learner : Learner, optional
        Train this learner instead of a fresh one, so that the caller keeps the trained
        model (e.g. for a confusion matrix or importance heatmaps, lesson 07). It must be
        untrained and built for the run: ``plan(...).learner()``. Not with ``cache``.

    Returns
    -------
    History
        Accuracy curves, task boundaries, the accuracy matrix, every task's Fisher
        (``history.fisher``, measured for every method), the importance each penalty term
        was given (``history.importance``: the Fisher, SI's or MAS's Ω) and the settings
        (``history.settings``).

    Raises
    ------
    ValueError, TypeError
        On a bad argument, before any training. ``ValueError`` also when λ (with ``lr``)
        breaks the stability bound lr·λ·max F < 2(1 + momentum) once a task's Fisher is
        known: after that task, before the next one trains.
    """
    p = plan(tasks, model, method, lam, epochs, fisher, fisher_samples, seed, width=width,
             lr=lr, optimizer=optimizer, batch_size=batch_size, gamma=gamma,
             eval_every=eval_every, eval_samples=eval_samples, source=source, root=root,
             replay_samples=replay_samples)
    return run_plan(p, callback, stop, cache, learner=learner)


def run_plan(
    p: Plan,
    callback: Callable[[Point], None] | None = None,
    stop: Callable[[], bool] | None = None,
    cache: TaskACache | None = None,
    *,
    learner: Learner | None = None,
) -> History:
    """:func:`run_sequence` for settings already resolved by :func:`ewclab.plan.plan`.

    For a front end that shows the plan before running it (the CLI's settings line and
    progress bar, the playground's step count): ``p = plan(...)``, then ``run_plan(p)``.
    To keep the trained model, build it first and hand it over::

        p = plan("split:class", method="replay")
        learner = p.learner()
        history = run_plan(p, learner=learner)    # learner is now trained
    """
    if learner is not None and cache is not None:
        raise ValueError("give run_plan a learner or a cache, not both: a cached task A "
                         "would replace the learner")
    if learner is not None and not isinstance(learner, Learner):
        raise TypeError(f"learner must be an ewclab Learner, got {type(learner).__name__}")
    if learner is not None and p.multi_head and not isinstance(learner, MultiHead):
        raise ValueError(f"tasks {p.scenario!r} need one head per task: give the learner "
                         f"p.learner() builds (a MultiHead), got {type(learner).__name__}")
    history = History(p.names, p.settings())
    key = cache_key(p.model, fingerprint(p.tasks), history.settings, p.eval_every,
                    p.eval_samples) if cache is not None else None
    entry = cache.get(key) if cache is not None else None
    if entry is None:
        learner, at = p.learner() if learner is None else learner, steps.At(0, 0, math.nan)
    else:
        learner, at = steps.restore(p, entry, history, callback)
    for i in range(at.task, len(p.tasks)):
        if i > 0:
            steps.check_stable(learner, p.tasks[i].name)
        run = TaskRun(p, i, learner)
        result = steps.train_task(p, i, learner, history, at, callback, stop, run)
        at = steps.At(i + 1, result.step, result.loss)
        if result.stopped:
            logger.info("stopped at step %d while training %r", at.step, p.tasks[i].name)
            break
        steps.finish_task(p, i, learner, history, result)
        fisher_i = steps.consolidate_task(p, i, learner, history, run)
        if i == 0 and cache is not None:
            cache.put(key, steps.cache_entry(learner, fisher_i, history, at))
    return history


# -- a λ sweep: one History per λ, the copies trained side by side ----------------------------
def sweep(
    lams: Sequence[float],
    tasks: str | Sequence[Task] = DEFAULTS["tasks"],
    model: ModelSpec = DEFAULTS["model"],
    method: str = DEFAULTS["method"],
    epochs: float | Sequence[float] | None = None,
    fisher: str | None = None,
    fisher_samples: int | None = None,
    seed: int = DEFAULTS["seed"],
    callback: Callable[[Point | SweepPoint], None] | None = None,
    stop: Callable[[], bool] | None = None,
    *,
    width: float | None = None,
    lr: float | None = None,
    optimizer: str | None = None,
    batch_size: int | None = None,
    gamma: float = DEFAULTS["gamma"],
    eval_every: int | None = None,
    eval_samples: int | None = None,
    cache: TaskACache | None = None,
    source: str = "bundled",
    root: str | None = None,
) -> list[History]:
    """:func:`run_sequence` for several λ at once: one History per λ, each the one
    ``run_sequence(tasks, model, method, lam, ...)`` returns (lesson 04).

    Task A does not depend on λ: it is trained once (by ``run_sequence``'s own steps, or
    taken from ``cache``) and every λ starts from a copy of it. The later tasks train the
    K copies side by side (:class:`~ewclab.side_by_side.SideBySide`: the same batches and
    dropout masks, one batched forward and backward per step), so each copy's curves,
    accuracy matrix and Fisher are its serial run's up to float rounding (tested within
    0.5 points per entry of the accuracy matrix).

    Parameters
    ----------
    lams : sequence of float
        The λ values (each finite and >= 0), one run each.
    method : {"ewc", "online-ewc", "l2"}
        The penalty the λ scale ("sgd" has no λ to sweep: include λ = 0 instead).
    callback : callable, optional
        Called with a :class:`~ewclab.training.Point` after each evaluation of task A
        (shared by every λ; ``point.history`` is task A's run) and with a
        :class:`~ewclab.sweep_training.SweepPoint` (every λ's accuracies) after each one
        of the later tasks.
    stop : callable, optional
        Polled before each step; True ends every run after the step in progress (their
        unfinished rows stay NaN).
    tasks, model, epochs, fisher, fisher_samples, seed, width, lr, optimizer, batch_size,
    gamma, eval_every, eval_samples, cache, source, root
        As for :func:`run_sequence`.

    Returns
    -------
    list of History
        One per λ, in the order given.

    Raises
    ------
    TypeError, ValueError
        On a bad argument, before any training; ``ValueError`` also when a λ breaks the
        SGD stability bound once a task's Fisher is known (the message names the λ),
        before the next task trains.
    """
    lams = _check_lams(lams)
    method = check_option(method, "method", SWEEP_METHODS)
    plans = [plan(tasks, model, method, lams[0], epochs, fisher, fisher_samples, seed,
                  width=width, lr=lr, optimizer=optimizer, batch_size=batch_size, gamma=gamma,
                  eval_every=eval_every, eval_samples=eval_samples, source=source, root=root)]
    plans += [dataclasses.replace(plans[0], lam=lam) for lam in lams[1:]]
    first = plans[0]
    if first.multi_head:
        raise ValueError(f"sweep trains one shared head; tasks {first.scenario!r} need one "
                         "head per task: use run_sequence for each λ")
    cache = TaskACache(maxsize=1) if cache is None else cache
    key = cache_key(first.model, fingerprint(first.tasks), first.settings(), eval_every,
                    eval_samples)
    entry = cache.get(key)
    cached = entry is not None
    if entry is None:
        entry, history_a = _task_a(first, callback, stop)
        if entry is None:  # stopped while training task A
            return [_replay_started(p, history_a) for p in plans]
        cache.put(key, entry)
    histories = [History(p.names, p.settings()) for p in plans]
    learners = []
    for p, history in zip(plans, histories, strict=True):
        told = callback if cached and not learners else None  # task A's point, once
        learner, at = steps.restore(p, entry, history, told)
        learners.append(learner)
    for i in range(1, len(first.tasks)):
        for p, learner in zip(plans, learners, strict=True):
            try:
                steps.check_stable(learner, first.tasks[i].name)
            except ValueError as err:
                raise type(err)(f"λ = {p.lam:g}: {err}") from None
        results = _train_side_by_side(plans, i, learners, histories, at, callback, stop)
        at = steps.At(i + 1, results[0].step, results[0].loss)
        if results[0].stopped:
            logger.info("sweep stopped at step %d while training %r", at.step,
                        first.tasks[i].name)
            break
        for p, learner, history, result in zip(plans, learners, histories, results,
                                               strict=True):
            steps.finish_task(p, i, learner, history, result)
            steps.consolidate_task(p, i, learner, history)
    return histories


#: The methods a sweep scales with λ.
SWEEP_METHODS = ("ewc", "online-ewc", "l2")


def _check_lams(lams: Any) -> list[float]:
    """A non-empty sequence of finite λ >= 0, as floats."""
    if isinstance(lams, (str, bytes)) or not isinstance(lams, Sequence) or not lams:
        raise TypeError(f"lams must be a non-empty sequence of numbers, got {lams!r}")
    return [float(check_real(lam, f"lams[{k}]", low=0, high=FLOAT32_MAX))
            for k, lam in enumerate(lams)]


def _task_a(p: Plan, callback: Callable[[Point], None] | None,
            stop: Callable[[], bool] | None) -> tuple[Entry | None, History]:
    """Task A trained once, by run_sequence's steps: its cache entry (None when stopped)
    and its history."""
    learner, history = p.learner(), History(p.names, p.settings())
    result = steps.train_task(p, 0, learner, history, steps.At(0, 0, math.nan), callback, stop)
    if result.stopped:
        return None, history
    steps.finish_task(p, 0, learner, history, result)
    fisher_a = steps.consolidate_task(p, 0, learner, history)
    at = steps.At(1, result.step, result.loss)
    return steps.cache_entry(learner, fisher_a, history, at), history


def _replay_started(p: Plan, task_a: History) -> History:
    """λ's history of a sweep stopped during task A: task A's points, no finished row."""
    saved = task_a.to_dict()
    history = History(p.names, p.settings())
    history.start_task(p.names[0], saved["boundaries"][0])
    for k, s in enumerate(saved["steps"]):
        history.record(s, {t: saved["accuracy"][t][k] for t in history.tasks})
    return history


def _train_side_by_side(plans: list[Plan], i: int, learners: list[Learner],
                        histories: list[History], at: steps.At,
                        callback: Callable[[SweepPoint], None] | None,
                        stop: Callable[[], bool] | None) -> list[TaskResult]:
    """Task ``i`` for every λ at once: :func:`steps.train_task`'s batches, buffer and seeding,
    the copies side by side; each learner then holds its own run's state (buffer included)."""
    p, task = plans[0], plans[0].tasks[i]
    for history in histories:
        history.start_task(task.name, at.step)
    logger.info("task %d/%d %r: %g epoch(s) from step %d (%s, λ = %s), side by side",
                i + 1, len(p.tasks), task.name, p.epochs[i], at.step, p.method,
                ", ".join(f"{q.lam:g}" for q in plans))
    side = SideBySide(learners)
    with torch.random.fork_rng(devices=steps.cuda_devices(learners[0])):
        torch.manual_seed(p.task_seed(i))
        results = train_side_by_side(
            side, task, p.epochs[i], histories, buffer=learners[0].buffer,
            eval_tasks=p.tasks, eval_every=p.eval_every, callback=callback, stop=stop,
            batch_size=p.batch_size, seed=p.task_seed(i), eval_samples=p.eval_samples,
            start_step=at.step,
        )
    side.write_back()
    kept = learners[0].buffer.state_dict()  # every copy saw the same batches
    for learner in learners[1:]:
        learner.buffer.load_state_dict(kept)
    return results
