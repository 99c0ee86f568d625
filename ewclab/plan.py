"""What a run will do: its settings with every default filled in and checked, and the learner
they describe.

:func:`plan` turns the arguments of :func:`ewclab.experiment.run_sequence` (most of them
optional) into a :class:`Plan`: the tasks, the model and every training and EWC setting,
each ``None`` replaced by the row of :func:`ewclab.settings.defaults` for the scenario,
model and method, and each value checked before anything trains. :func:`make_model` builds
a learner of a named kind; :meth:`Plan.learner` builds the one a plan describes, with its
EWC strength, mode, Fisher kind and buffer size given to the constructor.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ewclab.data import Task
from ewclab.fisher import KINDS
from ewclab.heads import MultiHead
from ewclab.learner import Learner
from ewclab.models import MLP, AlexNet, TestNet
from ewclab.scenarios import get_scenario
from ewclab.settings import DEMO, IMPORTANCES, METHODS, defaults, scenario_kind
from ewclab.training import steps_for
from ewclab.validation import check_int, check_option, check_real, check_seed

__all__ = ["MODELS", "ModelSpec", "Plan", "make_model", "plan"]

#: Model kinds by name.
MODELS = {"testnet": TestNet, "mlp": MLP, "alexnet": AlexNet}

ModelSpec = str | Callable[[], Learner]


def make_model(
    model: ModelSpec = DEMO.model,
    num_classes: int = 10,
    width: float | None = None,
    lr: float | None = None,
    optimizer: str | None = None,
    seed: int | None = None,
    heads: int | None = None,
    **options: Any,
) -> Learner:
    """Build a fresh learner: a kind from :data:`MODELS` or a callable returning one.

    Parameters
    ----------
    model : {"testnet", "mlp", "alexnet"} or callable
        A callable is called with no arguments and must return a
        :class:`~ewclab.learner.Learner` (the other arguments are then ignored).
    num_classes : int
    width : float, optional
        ``"mlp"``: units of each of its two hidden layers; ``"alexnet"`` and ``"testnet"``:
        their channel scale. Default: the model's row of :mod:`ewclab.settings`
        (``defaults(DEMO.tasks, model, "sgd")``).
    lr, optimizer : optional
        Default: the same row's.
    seed : int, optional
        Seeds the weight initialisation.
    heads : int, optional
        Build a :class:`~ewclab.heads.MultiHead` of this many heads of ``num_classes``
        outputs each, the named kind as its body (task-incremental learning).
    **options
        Further :class:`~ewclab.learner.Learner` options (``ewc_lambda``, ``ewc_mode``,
        ``fisher``, ``buffer_per_task``, ...).
    """
    if callable(model):
        learner = model()
        if not isinstance(learner, Learner):
            raise TypeError(f"model() must return an ewclab Learner, got {type(learner).__name__}")
        return learner
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; expected one of {sorted(MODELS)} or a callable")
    row = defaults(DEMO.tasks, model, "sgd")
    width = row.width if width is None else width
    options.update(
        lr=row.lr if lr is None else lr,
        optimizer=row.optimizer if optimizer is None else optimizer,
        seed=seed,
    )
    if model == "mlp":
        if isinstance(width, bool) or not float(width).is_integer() or width < 1:
            raise ValueError(f"mlp width must be a whole number of units >= 1, got {width!r}")
        arch = {"hidden": (int(width), int(width))}
    else:
        arch = {} if width is None else {"width": width}
    if heads is not None:
        return MultiHead(MODELS[model].__name__, heads=heads, classes_per_head=num_classes,
                         base_arch=arch, **options)
    return MODELS[model](num_classes, **arch, **options)


@dataclass(frozen=True)
class Plan:
    """A run's resolved, checked settings (see :func:`plan`).

    ``tasks`` are the Task objects in training order; ``epochs`` has one value per task;
    ``lam`` is 0 for the methods without a penalty (``"sgd"``, ``"replay"``); ``width``,
    ``lr``, ``optimizer`` are None only for a callable ``model`` (which brings its own);
    ``scenario`` is the defaults table's key of the tasks (e.g. ``"split:task"``);
    ``replay_samples`` is the replay buffer's size per task (``method="replay"``).
    """

    tasks: tuple[Task, ...]
    model: ModelSpec
    method: str
    lam: float
    gamma: float
    epochs: tuple[float, ...]
    width: float | None
    lr: float | None
    optimizer: str | None
    batch_size: int
    fisher: str
    fisher_samples: int
    seed: int
    eval_every: int | None = None
    eval_samples: int | None = None
    scenario: str = ""
    replay_samples: int | None = None

    @property
    def names(self) -> list[str]:
        """The tasks' names, in training order."""
        return [t.name for t in self.tasks]

    @property
    def mode(self) -> str | None:
        """The EWC mode of ``method`` (None for plain SGD)."""
        return METHODS[self.method]

    @property
    def importance(self) -> str | None:
        """The importance the method anchors: ``"fisher"``, ``"si"``, ``"mas"`` or None."""
        return IMPORTANCES[self.method]

    @property
    def multi_head(self) -> bool:
        """Task-incremental: one head per task, picked by the task label (a named model is
        then built as a :class:`~ewclab.heads.MultiHead`)."""
        return self.scenario.endswith(":task")

    @property
    def buffer_per_task(self) -> int:
        """Samples of each task ``learner.buffer`` keeps: the replay buffer's size for
        ``"replay"``, else the Fisher's samples."""
        return self.fisher_samples if self.replay_samples is None else self.replay_samples

    def steps(self) -> int:
        """Optimisation steps of the whole run (every task's epochs in batches)."""
        return sum(steps_for(t, e, self.batch_size)
                   for t, e in zip(self.tasks, self.epochs, strict=True))

    def task_seed(self, i: int) -> int:
        """Seed of task ``i``'s batch order and dropout: seed + i, wrapped to 64 bits."""
        return (self.seed + i) % 2**64

    def settings(self) -> dict[str, Any]:
        """The settings as plain data, as stored in ``History.settings``."""
        model = self.model
        return {
            "tasks": self.names,
            "model": model if isinstance(model, str) else getattr(model, "__name__", repr(model)),
            "width": self.width,
            "lr": self.lr,
            "optimizer": self.optimizer,
            "method": self.method,
            "lam": self.lam,
            "gamma": self.gamma,
            "epochs": list(self.epochs),
            "batch_size": self.batch_size,
            "fisher": self.fisher,
            "fisher_samples": self.fisher_samples,
            "seed": self.seed,
            "scenario": self.scenario,
            "replay_samples": self.replay_samples,
        }

    def learner(self) -> Learner:
        """A fresh learner for this plan: a named kind gets every setting through its
        constructor (task-IL: a :class:`~ewclab.heads.MultiHead`, one head per task); a
        callable's learner is given the plan's EWC settings and buffer size through its
        public attributes (for task-IL it must route by itself, e.g. be a MultiHead)."""
        num_classes = max(t.num_classes for t in self.tasks)
        ewc = dict(
            ewc_lambda=self.lam, ewc_mode=self.mode or "separate", ewc_gamma=self.gamma,
            fisher=self.fisher, buffer_per_task=self.buffer_per_task,
        )
        if isinstance(self.model, str):
            return make_model(self.model, num_classes, self.width, self.lr, self.optimizer,
                              seed=self.seed, heads=len(self.tasks) if self.multi_head
                              else None, **ewc)
        learner = make_model(self.model)
        self.configure(learner)
        learner.ewc.fisher = self.fisher
        learner.buffer.per_task = self.buffer_per_task
        return learner

    def configure(self, learner: Learner) -> None:
        """Give ``learner`` (with no consolidated task yet) this plan's method: λ, mode, γ."""
        learner.ewc.mode = self.mode or "separate"
        learner.ewc.gamma = self.gamma
        learner.ewc_lambda = self.lam


def plan(
    tasks: str | Sequence[Task],
    model: ModelSpec = DEMO.model,
    method: str = DEMO.method,
    lam: float | None = None,
    epochs: float | Sequence[float] | None = None,
    fisher: str | None = None,
    fisher_samples: int | None = None,
    seed: int = DEMO.seed,
    *,
    width: float | None = None,
    lr: float | None = None,
    optimizer: str | None = None,
    batch_size: int | None = None,
    gamma: float = DEMO.gamma,
    eval_every: int | None = None,
    eval_samples: int | None = None,
    source: str = "bundled",
    root: str | None = None,
    replay_samples: int | None = None,
) -> Plan:
    """Resolve and check a run's settings (the arguments of
    :func:`~ewclab.experiment.run_sequence`, which documents each).

    Every ``None`` takes the row of :func:`ewclab.settings.defaults` for the scenario, the
    model (the MLP's row for a callable model) and the method.

    Raises
    ------
    TypeError, ValueError
        On a bad argument; nothing has been built or trained.
    """
    if isinstance(tasks, str):
        tasks = get_scenario(tasks, source=source, root=root)
    tasks = tuple(tasks)
    if not tasks or not all(isinstance(t, Task) for t in tasks):
        raise TypeError(f"tasks must be a scenario name or a non-empty list of Task, got {tasks!r}")
    method = check_option(method, "method", tuple(METHODS))
    named = isinstance(model, str)
    if not named and not callable(model):
        raise TypeError(f"model must be one of {sorted(MODELS)} or a callable, got {model!r}")
    if named and model not in MODELS:
        raise ValueError(f"unknown model {model!r}; expected one of {sorted(MODELS)} or a callable")
    kind = scenario_kind(tasks)
    row = defaults(kind, model if named else "mlp", method)
    lam = row.lam if lam is None else lam
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real) or not 0 <= lam < math.inf:
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
    fisher = row.fisher if fisher is None else fisher
    if fisher not in KINDS:
        raise ValueError(f"unknown Fisher kind {fisher!r}; expected one of {list(KINDS)}")
    if eval_every is not None:
        check_int(eval_every, "eval_every", low=1)
    if eval_samples is not None:
        check_int(eval_samples, "eval_samples", low=1)
    return Plan(
        tasks=tasks,
        model=model,
        method=method,
        lam=0.0 if METHODS[method] is None else float(lam),
        gamma=check_real(gamma, "gamma", low=0, low_open=True, high=1),
        epochs=_epochs_per_task(row.epochs if epochs is None else epochs, len(tasks)),
        width=(row.width if width is None else width) if named else width,
        lr=(row.lr if lr is None else lr) if named else lr,
        optimizer=(row.optimizer if optimizer is None else optimizer) if named else optimizer,
        batch_size=check_int(row.batch_size if batch_size is None else batch_size,
                             "batch_size", low=1),
        fisher=fisher,
        fisher_samples=check_int(row.fisher_samples if fisher_samples is None
                                 else fisher_samples, "fisher_samples", low=1),
        seed=int(check_seed(seed, none_ok=False)),
        eval_every=eval_every,
        eval_samples=eval_samples,
        scenario=kind,
        replay_samples=None if method != "replay" else check_int(
            row.replay_samples if replay_samples is None else replay_samples,
            "replay_samples", low=1),
    )


def _epochs_per_task(epochs: float | Sequence[float], n: int) -> tuple[float, ...]:
    values = [epochs] * n if isinstance(epochs, numbers.Real) else list(epochs)
    if len(values) != n:
        raise ValueError(f"expected one epochs value or {n} (one per task), got {len(values)}")
    for e in values:
        check_real(e, "epochs", low=0, low_open=True)
    return tuple(int(e) if float(e).is_integer() else float(e) for e in values)
