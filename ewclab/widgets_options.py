"""What the EWC playground offers, where each choice starts, and how far λ can go.

The playground (:mod:`ewclab.widgets`) reads every starting value from the defaults table
(:func:`ewclab.settings.defaults`); this module turns a table row into slider settings
(:func:`lam_range`, :func:`row_epochs`), gives the largest λ SGD can follow once task A's
Fisher is known (:func:`largest_stable_lam`, :class:`FisherMaxima`) and checks the
playground's arguments (:func:`check_arguments`), each error naming the argument.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ewclab.cache import fingerprint
from ewclab.cache import key as cache_key
from ewclab.data import Task
from ewclab.divergence import sgd_curvature_limit
from ewclab.experiment import TaskACache
from ewclab.fisher import KINDS
from ewclab.history import History
from ewclab.settings import Settings, scenario_kind
from ewclab.validation import check_int, check_option, check_real, check_seed

__all__ = [
    "FISHER_SAMPLES", "LAM_HEADROOM", "LAM_STEP", "MAX_EPOCHS", "METHOD_CHOICES",
    "MODEL_CHOICES", "SOURCES",
    "TASK_PAIRS", "FisherMaxima", "check_arguments", "check_tasks", "first_line", "lam_range",
    "largest_stable_lam", "limit_text", "method_text", "percent_text", "refusal", "row_epochs",
]

#: Task pairs offered by the playground (scenario names of :func:`ewclab.scenarios.get_scenario`).
TASK_PAIRS = ("mnist->fashion", "fashion->mnist")
#: Models offered by the playground (each at the size its row of the defaults table gives).
MODEL_CHOICES = ("mlp", "testnet", "alexnet")
#: Methods offered by the playground (its EWC toggle: on = EWC, off = plain SGD). Online
#: EWC, L2, SI, MAS, replay and split MNIST's three scenarios are offered by ``ewclab demo``
#: (``--method``, ``--scenario``) and lesson 07, not here.
METHOD_CHOICES = ("sgd", "ewc")
#: Fisher sample counts offered by the playground.
FISHER_SAMPLES = (100, 300, 1000, 3000)
#: Data sources (see :func:`ewclab.data.load_task`).
SOURCES = ("bundled", "full")
#: Most epochs per task offered by the sliders.
MAX_EPOCHS = 20
#: Decades the λ slider reaches above the table's λ: the table's λ sit 2 to 3.5x below the
#: SGD stability bound (see their reasons), so the top is near where training diverges;
#: the playground marks the bound itself once task A's Fisher is known.
LAM_HEADROOM = 0.5
#: Decades per step of the λ slider (one step multiplies λ by 10**0.05 = 1.12).
LAM_STEP = 0.05


def lam_range(default: float) -> tuple[float, float]:
    """The λ slider's range, as powers of ten, for a combination whose table λ is ``default``.

    From 1 (or three decades below the top, if lower) up to ``default · 10**LAM_HEADROOM``.

    >>> lo, hi = lam_range(2000.0)
    >>> lo, round(10 ** hi)
    (0.0, 6325)
    """
    hi = math.log10(max(default, 1e-3)) + LAM_HEADROOM
    return min(0.0, math.floor(hi) - 3.0), hi


def largest_stable_lam(max_fisher: float, row: Settings) -> float:
    """The largest λ plain SGD can follow on task A's penalty: 2(1 + momentum) / (lr · max F).

    Heavy-ball SGD on the penalty λ/2 · Σ F_i (θ_i − θ*_i)² (curvature λ · F_i) diverges
    once lr · λ · max F ≥ 2(1 + momentum), the bound of
    :meth:`ewclab.learner.Learner.check_stability`; Adam has no such bound (inf).

    Parameters
    ----------
    max_fisher : float
        The largest entry of task A's diagonal Fisher.
    row : Settings
        The run's defaults (its ``optimizer``, ``lr`` and ``momentum``).
    """
    if row.optimizer != "sgd" or max_fisher <= 0:
        return math.inf
    return sgd_curvature_limit(row.lr, row.momentum) / max_fisher


def row_epochs(row: Settings) -> int:
    """A row's epochs as an epoch slider can hold them: a whole number in [1, MAX_EPOCHS]."""
    return min(MAX_EPOCHS, max(1, round(row.epochs)))


def method_text(s: Mapping[str, Any]) -> str:
    """A run's method in words: ``"EWC λ = 2000"`` or ``"plain SGD (λ = 0)"``."""
    return f"EWC λ = {s['lam']:.4g}" if s["method"] == "ewc" else "plain SGD (λ = 0)"


def percent_text(x: float) -> str:
    """An accuracy fraction as a percentage, ``"–"`` for NaN (not measured)."""
    return "–" if math.isnan(x) else f"{100 * x:.1f}%"


def first_line(err: BaseException) -> str:
    """An exception as one line: its message's first line, or its type without a message."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def limit_text(lam: float, limit: float | None) -> str:
    """What the λ slider's side says: the largest stable λ, and whether ``lam`` is past it.

    >>> limit_text(100.0, None)
    'largest stable λ: known once task A is trained'
    >>> limit_text(100.0, 4000.0), limit_text(5000.0, 4000.0)
    ('stable for λ < 4e+03', '⚠ λ ≥ 4e+03 makes training diverge: Run is refused')
    """
    if limit is None:
        return "largest stable λ: known once task A is trained"
    if math.isinf(limit):
        return ""
    if lam >= limit:
        return f"⚠ λ ≥ {limit:.3g} makes training diverge: Run is refused"
    return f"stable for λ < {limit:.3g}"


def refusal(lam: float, limit: float, run: int | None = None) -> str:
    """The one result line of a run refused because ``lam`` is at or above ``limit``:
    before it started, or (``run``) after task A, when its Fisher showed it.

    >>> refusal(5000.0, 4000.0, run=3)[:60]
    'Run 3 stopped before task B: λ = 5e+03 is too strong for tas'
    """
    start = "Not run" if run is None else f"Run {run} stopped before task B"
    return (
        f"{start}: λ = {lam:.3g} is too strong for task A's Fisher here; plain SGD stays "
        f"stable only for λ < {limit:.3g} (lr·λ·max F < 2(1 + momentum)). Move the λ "
        "slider lower."
    )


class FisherMaxima:
    """The largest entry of task A's Fisher for each playground setting, as far as known:
    learned from runs (also failed ones) and read from a task-A cache without using it.

    Parameters
    ----------
    cache : TaskACache
        The cache the playground's runs use.
    seed : int
        The runs' seed.
    tasks : callable
        Loads the tasks of a dropdown entry (a task pair).
    """

    def __init__(
        self, cache: TaskACache, seed: int, tasks: Callable[[str], list[Task]]
    ) -> None:
        self.cache, self.seed, self._tasks = cache, seed, tasks
        self._known: dict[tuple, float] = {}
        self._fingerprints: dict[str, tuple[str, str]] = {}  # pair -> (data, scenario kind)

    @staticmethod
    def _key(s: Mapping[str, Any]) -> tuple:
        """What task A's Fisher depends on, among the playground's controls."""
        return s["pair"], s["model"], s["epochs_a"], s["fisher"], s["fisher_samples"]

    def learn(self, s: Mapping[str, Any], history: History | None) -> None:
        """Keep max F of task A from the history of a run with settings ``s``, if it has one."""
        if history is not None and history.tasks[0] in history.fisher:
            fisher = history.fisher[history.tasks[0]]
            self._known[self._key(s)] = max(float(f.max()) for f in fisher.values())

    def get(self, s: Mapping[str, Any]) -> float | None:
        """Max F of task A for a run with settings ``s``, or None when not known."""
        known = self._known.get(self._key(s))
        if known is not None or not len(self.cache):
            return known
        if s["pair"] not in self._fingerprints:
            try:
                tasks = self._tasks(s["pair"])
                self._fingerprints[s["pair"]] = fingerprint(tasks), scenario_kind(tasks)
            except (OSError, ValueError):  # data not at hand: a run will say so
                return None
        data, kind = self._fingerprints[s["pair"]]
        settings = {**s, "epochs": [s["epochs_a"]], "seed": self.seed, "scenario": kind}
        entry = self.cache.peek(cache_key(s["model"], data, settings))
        if entry is None:
            return None
        self._known[self._key(s)] = max(float(f.max()) for f in entry.fisher.values())
        return self._known[self._key(s)]


def check_tasks(tasks: Any) -> tuple[str, str, list[Task] | None]:
    """The playground's ``tasks`` argument as (dropdown entry, scenario name, given tasks).

    A task-pair name stands for itself; two Task objects become the entry
    ``"a->b (given)"`` with scenario ``"a->b"`` (for the defaults table).
    """
    if isinstance(tasks, str):
        return check_option(tasks, "tasks", TASK_PAIRS), tasks, None
    given = list(tasks) if isinstance(tasks, Sequence) else []
    if len(given) != 2 or not all(isinstance(t, Task) for t in given):
        raise TypeError(f"tasks must be one of {TASK_PAIRS} or a list of two Task, got {tasks!r}")
    scenario = f"{given[0].name}->{given[1].name}"
    return f"{scenario} (given)", scenario, given


def check_arguments(
    row: Settings,
    pair: str,
    lam: Any,
    epochs_a: Any,
    epochs_b: Any,
    fisher: Any,
    fisher_samples: Any,
    cache: Any,
    seed: Any,
    source: Any,
    root: Any,
) -> tuple[float, int, int, int]:
    """Check the playground's arguments for ``pair`` with the defaults ``row`` of its model.

    Returns
    -------
    lam, epochs_a, epochs_b, seed
        With the row's λ and epochs filled in for ``None``.

    Raises
    ------
    TypeError, ValueError
        ``<argument> must be <expected>, got <value>`` for the first bad argument.
    """
    lo, hi = lam_range(row.lam)
    lam = row.lam if lam is None else check_real(lam, "lam", low=0.0)
    if lam != 0 and not 10**lo <= lam <= 10**hi:
        raise ValueError(
            f"lam must be 0 (no EWC) or in [{10**lo:.3g}, {10**hi:.3g}] for {row.model} on "
            f"{pair}, got {lam!r}"
        )
    epochs = [row_epochs(row) if e is None else e for e in (epochs_a, epochs_b)]
    for name, value in zip(("epochs_a", "epochs_b"), epochs, strict=True):
        check_int(value, name, low=1, high=MAX_EPOCHS)
    check_int(fisher_samples, "fisher_samples", low=1)
    check_option(fisher, "fisher", KINDS)
    if cache is not None and not isinstance(cache, TaskACache):
        raise TypeError(f"cache must be a TaskACache or None, got {cache!r}")
    seed = check_seed(seed, "seed", none_ok=False)
    check_option(source, "source", SOURCES)
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a folder path (str or path-like) or None, got {root!r}")
    return lam, int(epochs[0]), int(epochs[1]), seed
