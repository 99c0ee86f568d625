"""Train a model on a sequence of tasks, with or without EWC, and record what happens.

>>> from ewclab.experiment import run_sequence
>>> history = run_sequence("mnist->fashion", method="ewc", epochs=2)   # doctest: +SKIP
>>> history.accuracy_matrix                                            # doctest: +SKIP

``train_on_task`` (in :mod:`ewclab.training`, re-exported here) trains on one task;
``run_sequence`` trains task after task, consolidating after each, and returns a
:class:`ewclab.history.History`.
``DEFAULTS`` holds the demo's settings, chosen by measurement (benchmarks/RESULTS.md), for
the CLI, the notebooks and the widgets alike; every other (scenario, model, method) gets
its λ, learning rate, epochs and width from :func:`ewclab.settings.defaults`. Training task
A does not depend on λ or on the later tasks' settings, so a
:class:`~ewclab.cache.TaskACache` lets a re-run with a new λ skip it.
"""

from __future__ import annotations

import copy
import logging
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ewclab.buffer import TaskBuffer
from ewclab.cache import Entry, TaskACache, fingerprint
from ewclab.cache import key as cache_key
from ewclab.data import Task
from ewclab.fisher import KINDS, fisher_diagonal
from ewclab.history import History
from ewclab.learner import Learner
from ewclab.models import MLP, AlexNet, TestNet
from ewclab.scenarios import get_scenario
from ewclab.settings import DEMO, METHODS, defaults, scenario_kind
from ewclab.training import (
    Point,
    TaskResult,
    evaluate,
    percentages,
    steps_for,
    train_on_task,
)
from ewclab.validation import check_int, check_real, check_seed

__all__ = [
    "DEFAULTS",
    "METHODS",
    "MODELS",
    "Point",
    "TaskACache",
    "TaskResult",
    "evaluate",
    "make_model",
    "run_sequence",
    "steps_for",
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

#: Model kinds by name.
MODELS = {"testnet": TestNet, "mlp": MLP, "alexnet": AlexNet}

ModelSpec = str | Callable[[], Learner]


def make_model(
    model: ModelSpec = DEFAULTS["model"],
    num_classes: int = 10,
    width: float | None = None,
    lr: float | None = None,
    optimizer: str | None = None,
    seed: int | None = None,
) -> Learner:
    """Build a fresh learner: a kind from :data:`MODELS` or a callable returning one.

    Parameters
    ----------
    model : {"testnet", "mlp", "alexnet"} or callable
        A callable is called with no arguments and must return a
        :class:`~ewclab.learner.Learner` (the other arguments are then ignored).
    num_classes : int
    width : float, optional
        ``"mlp"``: units of each of its two hidden layers; ``"alexnet"``: its channel
        scale; ``"testnet"`` has a fixed size. Default: the model's row of
        :mod:`ewclab.settings` (``defaults(DEFAULTS["tasks"], model, "sgd")``).
    lr, optimizer : optional
        Default: the same row's.
    seed : int, optional
        Seeds the weight initialisation.
    """
    if callable(model):
        learner = model()
        if not isinstance(learner, Learner):
            raise TypeError(f"model() must return an ewclab Learner, got {type(learner).__name__}")
        return learner
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; expected one of {sorted(MODELS)} or a callable")
    row = defaults(DEFAULTS["tasks"], model, "sgd")
    options = dict(
        lr=row.lr if lr is None else lr,
        optimizer=row.optimizer if optimizer is None else optimizer,
        seed=seed,
    )
    if model == "mlp":
        width = row.width if width is None else width
        if isinstance(width, bool) or not float(width).is_integer() or width < 1:
            raise ValueError(f"mlp width must be a whole number of units >= 1, got {width!r}")
        return MLP(num_classes, hidden=(int(width), int(width)), **options)
    if model == "alexnet":
        return AlexNet(num_classes, width=row.width if width is None else width, **options)
    if width is not None:
        raise ValueError(f"testnet has a fixed size; got width={width!r}")
    return TestNet(num_classes, **options)


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
    method : {"sgd", "l2", "ewc", "online-ewc"}
        ``"sgd"``: plain training (no penalty: catastrophic forgetting); ``"l2"``: the
        penalty with F = 1; ``"ewc"``: one EWC term per task (Kirkpatrick et al. 2017);
        ``"online-ewc"``: one running term decayed by ``gamma`` (Schwarz et al. 2018).
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

    Returns
    -------
    History
        Accuracy curves, task boundaries, the accuracy matrix, every task's Fisher
        (``history.fisher``) and the settings (``history.settings``).

    Raises
    ------
    ValueError, TypeError
        On a bad argument, before any training. ``ValueError`` also when λ (with ``lr``)
        breaks the stability bound lr·λ·max F < 2(1 + momentum) once a task's Fisher is
        known: after that task, before the next one trains.
    """
    if isinstance(tasks, str):
        tasks = get_scenario(tasks, source=source, root=root)
    tasks = list(tasks)
    if not tasks or not all(isinstance(t, Task) for t in tasks):
        raise TypeError(f"tasks must be a scenario name or a non-empty list of Task, got {tasks!r}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {sorted(METHODS)}")
    row = defaults(scenario_kind([t.name for t in tasks]),
                   model if isinstance(model, str) else "mlp", method)
    lam = row.lam if lam is None else lam
    epochs = row.epochs if epochs is None else epochs
    lr = row.lr if lr is None else lr
    optimizer = row.optimizer if optimizer is None else optimizer
    batch_size = row.batch_size if batch_size is None else batch_size
    fisher = row.fisher if fisher is None else fisher
    fisher_samples = row.fisher_samples if fisher_samples is None else fisher_samples
    if width is None and isinstance(model, str):
        width = row.width
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real) or not 0 <= lam < math.inf:
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
    lam = 0.0 if method == "sgd" else lam
    per_task = _epochs_per_task(epochs, len(tasks))
    if fisher not in KINDS:
        raise ValueError(f"unknown Fisher kind {fisher!r}; expected one of {list(KINDS)}")
    check_int(fisher_samples, "fisher_samples", low=1)
    check_int(batch_size, "batch_size", low=1)
    if eval_samples is not None:
        check_int(eval_samples, "eval_samples", low=1)
    seed = check_seed(seed, none_ok=False)
    num_classes = max(t.num_classes for t in tasks)
    settings = {
        "tasks": [t.name for t in tasks],
        "model": model if isinstance(model, str) else getattr(model, "__name__", repr(model)),
        "width": width,
        "lr": lr,
        "optimizer": optimizer,
        "method": method,
        "lam": float(lam),
        "gamma": float(gamma),
        "epochs": per_task,
        "batch_size": batch_size,
        "fisher": fisher,
        "fisher_samples": fisher_samples,
        "seed": int(seed),
    }
    history = History([t.name for t in tasks], settings)
    key = None
    if cache is not None:
        key = cache_key(model, fingerprint(tasks), settings, eval_every, eval_samples)
    entry = cache.get(key) if cache is not None else None
    if entry is None:
        learner = make_model(model, num_classes, width, lr, optimizer, seed=seed)
        _set_method(learner, method, lam, gamma)
        step, loss = 0, math.nan
        first = 0
    else:
        learner = copy.deepcopy(entry.model)
        _set_method(learner, method, lam, gamma)
        _replay(history, entry.history)
        history.fisher[tasks[0].name] = _clone(entry.fisher)
        if method != "sgd":
            learner.ewc.add_task(_clone(entry.fisher))
        step, loss = entry.step, entry.loss
        first = 1
        logger.info("task 1/%d %r: restored from the task-A cache at step %d",
                    len(tasks), tasks[0].name, step)
        if callback is not None:
            callback(Point(tasks[0].name, step, loss, _last_point(history), history))
        if len(tasks) == 1:
            return history
        _check_stable(learner, tasks[1].name)

    buffer = TaskBuffer(per_task=fisher_samples, seed=seed)
    for i in range(first, len(tasks)):
        task = tasks[i]
        task_seed = (seed + i) % 2**64  # torch seeds are 64-bit: wrap, never overflow
        torch.manual_seed(task_seed)
        history.start_task(task.name, step)
        logger.info("task %d/%d %r: %g epoch(s) from step %d (%s, λ = %g)",
                    i + 1, len(tasks), task.name, per_task[i], step, method, lam)
        if i == 0:
            history.record(step, evaluate(learner, tasks, eval_samples))
        result = train_on_task(
            learner, task.name, task, epochs=per_task[i], buffer=buffer, eval_tasks=tasks,
            eval_every=eval_every, callback=callback, stop=stop, batch_size=batch_size,
            seed=task_seed, buffer_samples=fisher_samples, eval_samples=eval_samples,
            history=history, start_step=step,
        )
        step, loss = result.step, result.loss
        if result.stopped:
            logger.info("stopped at step %d while training %r", step, task.name)
            break
        final = result.points[-1].accuracies
        if eval_samples is not None:
            final = evaluate(learner, tasks)
        history.finish_task(task.name, final)
        logger.info("after task %r: test accuracy %s", task.name, percentages(final))
        X, y = buffer.get(task.name)
        generator = torch.Generator().manual_seed(task_seed)
        F = fisher_diagonal(learner, X, y, kind=fisher, generator=generator)
        logger.info("Fisher of %r: %s, on %d samples", task.name, fisher, len(y))
        history.fisher[task.name] = _clone(F)
        if i == 0 and cache is not None:
            saved = Entry(copy.deepcopy(learner), _clone(F), history.to_dict(), step, loss)
            cache.put(key, saved)
        if method != "sgd":
            learner.ewc.add_task(F)
        if i + 1 < len(tasks):
            _check_stable(learner, tasks[i + 1].name)
    return history


def _check_stable(learner: Learner, next_task: str) -> None:
    """Refuse to train ``next_task`` when the penalty would make SGD diverge on it."""
    try:
        learner.check_stability()
    except ValueError as err:  # a DivergenceError: say which task it protects
        raise type(err)(f"before training task {next_task!r}: {err}") from None


def _set_method(learner: Learner, method: str, lam: float, gamma: float) -> None:
    mode = METHODS[method]
    if mode is not None:
        learner.ewc.mode = mode
        learner.ewc.gamma = gamma
    learner.ewc_lambda = lam if mode is not None else 0.0


def _replay(history: History, saved: Mapping) -> None:
    """Copy task A's part of a saved history (its first task) into ``history``."""
    name = history.tasks[0]
    history.start_task(name, saved["boundaries"][0])
    for k, s in enumerate(saved["steps"]):
        history.record(s, {t: saved["accuracy"][t][k] for t in history.tasks})
    history.finish_task(name, dict(zip(history.tasks, saved["accuracy_matrix"][0], strict=True)))


def _clone(fisher: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in fisher.items()}


def _last_point(history: History) -> dict[str, float]:
    return {t: history.accuracy[t][-1] for t in history.tasks}


def _epochs_per_task(epochs: float | Sequence[float], n: int) -> list[float]:
    values = [epochs] * n if isinstance(epochs, numbers.Real) else list(epochs)
    if len(values) != n:
        raise ValueError(f"expected one epochs value or {n} (one per task), got {len(values)}")
    for e in values:
        check_real(e, "epochs", low=0, low_open=True)
    return [int(e) if float(e).is_integer() else float(e) for e in values]
