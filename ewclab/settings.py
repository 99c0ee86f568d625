"""The lab's defaults: one table per (scenario, model, method), each value with its reason.

Every front end (``ewclab demo``, the playground, the notebooks) asks :func:`defaults` for
the settings of a run instead of keeping numbers of its own:

>>> s = defaults("mnist->fashion", "mlp", "ewc")
>>> s.lam, s.lr, s.epochs
(2000.0, 0.01, 5)

The values were chosen by measurement on the bundled data (the grids are in
``benchmarks/RESULTS.md``); each row carries a one-line reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ewclab.data import Task
from ewclab.settings_split import REPLAY_SAMPLES, REPLAY_WHY, SPLIT_LAM
from ewclab.split import SplitTask

__all__ = [
    "CLASSIC_METHODS",
    "DEMO",
    "FALLBACK_LAM",
    "IMPORTANCES",
    "LAM",
    "METHODS",
    "MODEL_DEFAULTS",
    "MODELS",
    "SCENARIO_KINDS",
    "ModelDefaults",
    "Settings",
    "defaults",
    "offered",
    "scenario_kind",
]

#: Training methods and the EWC mode each one uses (None: no penalty). SI and MAS anchor
#: their summed importance at the latest weights, as their papers do: the ``"online"`` mode
#: with γ = 1. ``"replay"`` has no penalty: it mixes stored samples of earlier tasks into
#: every step (:mod:`ewclab.replay`).
METHODS: dict[str, str | None] = {
    "sgd": None, "ewc": "separate", "online-ewc": "online", "l2": "l2",
    "si": "online", "mas": "online", "replay": None,
}

#: The importance per weight each method's penalty anchors (:mod:`ewclab.importance`):
#: the Fisher (``"l2"`` replaces it by 1 inside the penalty), SI's path integral or MAS's
#: output sensitivity; None: no penalty.
IMPORTANCES: dict[str, str | None] = {
    "sgd": None, "ewc": "fisher", "online-ewc": "fisher", "l2": "fisher",
    "si": "si", "mas": "mas", "replay": None,
}

#: The methods of the EWC paper's comparison, offered for every scenario and model.
CLASSIC_METHODS = ("sgd", "ewc", "online-ewc", "l2")

#: The model kinds the lab offers (built by :func:`ewclab.experiment.make_model`).
MODELS = ("mlp", "testnet", "alexnet")

#: Scenario kinds the table is keyed by (see :func:`scenario_kind`). Split MNIST comes in
#: van de Ven & Tolias's three scenarios (:mod:`ewclab.split`); plain ``"split"`` is
#: ``"split:domain"``.
SCENARIO_KINDS = ("mnist->fashion", "fashion->mnist", "permuted", "split:task",
                  "split:domain", "split:class")


@dataclass(frozen=True)
class Settings:
    """Everything a run needs besides its data, as one frozen record.

    Attributes
    ----------
    tasks, model, method : str
        Scenario name, model kind, training method.
    lam : float
        Penalty strength λ, penalty = λ/2 · Σ F_i (θ_i − θ*_i)² (0 for ``"sgd"``).
    lr, momentum : float
        SGD learning rate and momentum.
    epochs : float
        Passes over each task's training set.
    width : float or None
        MLP: units per hidden layer; AlexNet: channel scale; TestNet: None (fixed size).
    optimizer : str
        ``"sgd"`` or ``"adam"``.
    batch_size : int
        Samples per step.
    gamma : float
        Decay of the online-EWC term.
    fisher : str
        Fisher kind for consolidation (``"exact"``, ``"empirical"``, ``"sampled"``).
    fisher_samples : int
        Training samples of each task kept for its Fisher.
    replay_samples : int
        ``"replay"`` only: samples of each task kept in the buffer and replayed (the
        buffer then keeps this many per task instead of ``fisher_samples``).
    seed : int
        Seed of the model, the batch order and the sampled Fisher.
    why : str
        How the λ of this (scenario, model, method) was chosen.
    """

    tasks: str
    model: str
    method: str
    lam: float
    lr: float
    epochs: float
    width: float | None
    optimizer: str = "sgd"
    momentum: float = 0.9
    batch_size: int = 64
    gamma: float = 1.0
    fisher: str = "exact"
    fisher_samples: int = 1000
    replay_samples: int = 200
    seed: int = 0
    why: str = ""


@dataclass(frozen=True)
class ModelDefaults:
    """Per-model training defaults and the reason for them."""

    lr: float
    width: float | None
    epochs: float
    why: str


#: Per-model defaults (learning rate, size, epochs per task).
MODEL_DEFAULTS: dict[str, ModelDefaults] = {
    "mlp": ModelDefaults(
        lr=0.01, width=400, epochs=5,
        why="the EWC paper's permuted-MNIST MLP (2x400); 5 epochs learn task A to ~89 % "
        "on the bundled data in ~4 s on one core",
    ),
    "testnet": ModelDefaults(
        lr=0.01, width=None, epochs=5,
        why="the small conv net of the demo; same SGD settings as the MLP: 5 epochs learn "
        "MNIST to 92.7 % (RESULTS.md, 'AlexNet and TestNet at their defaults'); lr 0.005 "
        "learned task A worse (88.3 %) without helping EWC",
    ),
    "alexnet": ModelDefaults(
        lr=0.005, width=0.25, epochs=5,
        why="width 0.25 (3.6 M weights) learns MNIST as well as 1.0 (57 M) at a fraction of "
        "its seconds per step (RESULTS.md, 'AlexNet and TestNet at their defaults'); lr "
        "0.005 leaves λ twice the room below the SGD bound that lr 0.01 does: with it EWC "
        "keeps MNIST within 10 points (at lr 0.01 no λ below the bound did)",
    ),
}

#: λ per (scenario kind, model, method). Methods missing here use :data:`FALLBACK_LAM`.
LAM: dict[tuple[str, str, str], tuple[float, str]] = {
    ("mnist->fashion", "mlp", "ewc"): (
        2000.0,
        "the λ/model grid in benchmarks/RESULTS.md: keeps MNIST within ~5 points after 5 and "
        "50 epochs, and lr·λ·max F stays ~2x below the SGD bound 2(1 + momentum)",
    ),
    ("mnist->fashion", "mlp", "online-ewc"): (
        2000.0,
        "as separate EWC (two tasks, γ = 1: the same penalty); RESULTS.md section 7: MNIST "
        "84.2 % at the end vs 32.1 % with SGD, margin 2.0 below the SGD bound",
    ),
    ("mnist->fashion", "mlp", "l2"): (
        0.1,
        "RESULTS.md section 7: MNIST 64.9 % at the end vs 32.1 % with SGD while Fashion keeps "
        "73.8 % (SGD 78.5 %); λ 0.3 and 1 keep MNIST better but give Fashion away (64.5 %, "
        "47.2 %)",
    ),
    ("fashion->mnist", "mlp", "ewc"): (
        300.0,
        "RESULTS.md section 7: Fashion's Fisher is ~4x MNIST's (max 0.38), so λ 2000 breaks "
        "the SGD bound (λ < ~1000); λ 300 keeps Fashion at 52.5 % vs 33.1 % with SGD, MNIST "
        "89.4 %, margin 3.4 (λ 500 gains 0.8 points at margin 2.0)",
    ),
    ("fashion->mnist", "mlp", "online-ewc"): (
        300.0, "as separate EWC (two tasks, γ = 1: the same penalty and numbers)",
    ),
    ("fashion->mnist", "mlp", "l2"): (
        0.1,
        "RESULTS.md section 7: Fashion 66.5 % at the end vs 33.1 % with SGD, MNIST 87.8 % "
        "(SGD 90.0 %); λ 0.3 costs MNIST 13 points",
    ),
    ("split:domain", "mlp", "ewc"): (
        1000.0,
        "RESULTS.md section 7: old tasks 64.2 % at the end vs 53.1 % with SGD (BWT -32.6 vs "
        "-44.5 points), last task 96.0 %, margin 3.5; λ 1500 gains 3 points at margin 2.1, "
        "λ 3000 breaks the bound (the grid below: chance)",
    ),
    ("split:domain", "mlp", "online-ewc"): (
        1000.0,
        "RESULTS.md section 7: old tasks 61.6 % vs 53.1 % with SGD, last task 96.0 %, "
        "margin 3.4 (γ = 1 sums the Fishers as separate EWC does)",
    ),
    ("split:domain", "mlp", "l2"): (
        0.3,
        "RESULTS.md section 7: old tasks 70.6 % vs 53.1 % with SGD, last task 93.5 % "
        "(SGD 95.0 %); the two-class tasks share one head, so uniform anchoring helps",
    ),
    ("permuted", "mlp", "ewc"): (
        300.0,
        "RESULTS.md section 7 (permuted:5): old tasks 86.0 % vs 81.7 % with SGD (BWT -3.1 "
        "vs -8.8 points), last task 85.9 %, margin 3.5 with four Fishers summed; λ 500 "
        "reaches margin 2.1 for no gain; the Fishers add up, so long sequences (T > ~10) "
        "may be refused: lower λ then",
    ),
    ("permuted", "mlp", "online-ewc"): (
        300.0,
        "RESULTS.md section 7 (permuted:5): old tasks 86.4 % vs 81.7 % with SGD (BWT -2.7 "
        "points), last task 86.0 %, margin 3.6",
    ),
    ("permuted", "mlp", "l2"): (
        0.03,
        "RESULTS.md section 7 (permuted:5): no λ measured keeps the old tasks better than "
        "SGD (53.8 % at 0.03, 53.4 % at 0.1, vs 81.7 %): one penalty on every weight fights "
        "each new permutation, the lesson EWC's per-weight Fisher answers; 0.03 keeps the "
        "last task (86.2 %)",
    ),
    ("mnist->fashion", "testnet", "ewc"): (
        300.0,
        "measured at lr 0.01, 5 epochs: MNIST 92.7 % -> 59.5 % at the end vs 27.0 % with SGD, "
        "Fashion 64.4 % (SGD 71.7 %), margin 5.0; λ 500 keeps MNIST at 65.8 % but Fashion "
        "drops 11 points, λ 750 (margin 2.0) does no better. TestNet's 21,840 weights cannot "
        "hold MNIST within 10 points and still learn Fashion at any λ measured",
    ),
    ("mnist->fashion", "testnet", "online-ewc"): (
        300.0, "as separate EWC (two tasks, γ = 1: the same penalty and numbers)",
    ),
    ("mnist->fashion", "testnet", "l2"): (
        0.1,
        "measured at lr 0.01, 5 epochs: MNIST 54.3 % at the end vs 27.0 % with SGD, Fashion "
        "67.0 % (SGD 71.7 %); λ 0.3 gives Fashion away (58.4 %) for 3 points of MNIST",
    ),
    ("mnist->fashion", "alexnet", "ewc"): (
        6000.0,
        "measured at width 0.25, lr 0.005, 5 epochs: MNIST 92.5 % -> 84.3 % at the end vs "
        "18.8 % with SGD, Fashion 72.6 % (SGD 78.7 %), margin 2.9; λ 12000 keeps 87.5 % at "
        "margin 1.4 (too near the bound); at lr 0.01 the best λ (3000) lost 12 points",
    ),
    ("mnist->fashion", "alexnet", "online-ewc"): (
        6000.0, "as separate EWC (two tasks, γ = 1: the same penalty and numbers)",
    ),
    ("mnist->fashion", "alexnet", "l2"): (
        0.1,
        "measured at width 0.25, lr 0.005, 5 epochs: MNIST 56.7 % at the end vs 18.8 % with "
        "SGD, Fashion 75.4 % (SGD 78.7 %); λ 1 keeps MNIST at 83.0 % but Fashion drops to "
        "62.3 %",
    ),
    ("fashion->mnist", "alexnet", "ewc"): (
        1000.0,
        "measured at width 0.25, lr 0.005, 5 epochs: Fashion's Fisher (max 0.23) is ~5x "
        "MNIST's, so λ 2000 sits at margin 1.6; λ 1000 (margin 3.3) keeps Fashion at 59.4 % "
        "vs 12.9 % with SGD, MNIST 91.2 % (SGD 92.3 %); λ 2000: 64.8 %, MNIST 89.0 %",
    ),
    ("fashion->mnist", "alexnet", "online-ewc"): (
        1000.0, "as separate EWC (two tasks, γ = 1: the same penalty and numbers)",
    ),
    ("fashion->mnist", "alexnet", "l2"): (
        1.0,
        "measured at width 0.25, lr 0.005, 5 epochs: Fashion 38.1 % at the end vs 12.9 % "
        "with SGD, MNIST 80.4 % (SGD 92.3 %); λ 0.1 keeps nothing (12.7 %)",
    ),
    ("split:domain", "alexnet", "ewc"): (
        2000.0,
        "measured at width 0.25, lr 0.005, 5 epochs: old tasks 65.1 % at the end vs 43.5 % "
        "with SGD, last task 94.0 % (SGD 98.0 %), margin 3.5; λ 1000 keeps 63.4 %",
    ),
    ("split:domain", "alexnet", "online-ewc"): (
        2000.0, "as separate EWC: γ = 1 sums the Fishers as separate EWC does (not measured "
        "on its own)",
    ),
    ("split:domain", "alexnet", "l2"): (
        1.0,
        "measured at width 0.25, lr 0.005, 5 epochs: old tasks 74.5 % at the end vs 43.5 % "
        "with SGD, last task 90.5 % (SGD 98.0 %); λ 0.1 keeps 59.1 %",
    ),
    ("permuted", "alexnet", "ewc"): (
        300.0,
        "measured on permuted:5 at width 0.25, lr 0.005, 5 epochs: old tasks 68.6 % at the "
        "end vs 44.8 % with SGD (task A 66.6 % vs 18.6 %), last task 83.7 % (SGD 90.4 %), "
        "margin 3.2 with four Fishers summed; λ 500 keeps 70.2 % at margin 1.9, λ 2000 "
        "diverged",
    ),
    ("permuted", "alexnet", "online-ewc"): (
        300.0, "as separate EWC: γ = 1 sums the Fishers as separate EWC does (not measured "
        "on its own)",
    ),
    ("permuted", "alexnet", "l2"): (
        0.03,
        "measured on permuted:5 at width 0.25, lr 0.005, 5 epochs: old tasks 47.8 % at the "
        "end vs 44.8 % with SGD, last task 88.1 % (SGD 90.4 %): one penalty on every weight "
        "keeps little of a permutation",
    ),
    ("fashion->mnist", "testnet", "ewc"): (
        100.0,
        "measured at lr 0.01, 5 epochs: Fashion's Fisher is ~6x MNIST's (max 1.42), so the "
        "SGD bound allows λ < ~270; λ 100 (margin 2.7) keeps Fashion at 25.8 % vs 5.4 % with "
        "SGD, MNIST 89.1 % (SGD 90.9 %); λ 200 (margin 1.3) does no better",
    ),
    ("fashion->mnist", "testnet", "online-ewc"): (
        100.0, "as separate EWC (two tasks, γ = 1: the same penalty and numbers)",
    ),
    ("fashion->mnist", "testnet", "l2"): (
        0.1,
        "measured at lr 0.01, 5 epochs: Fashion 15.2 % at the end vs 5.4 % with SGD, MNIST "
        "87.6 % (SGD 90.9 %)",
    ),
    ("split:domain", "testnet", "ewc"): (
        300.0,
        "measured at lr 0.01, 5 epochs: old tasks 73.0 % at the end vs 50.4 % with SGD, last "
        "task 93.5 % (SGD 95.5 %), margin 6.8; λ 100 keeps 66.0 %",
    ),
    ("split:domain", "testnet", "online-ewc"): (
        300.0, "as separate EWC: γ = 1 sums the Fishers as separate EWC does (not measured "
        "on its own)",
    ),
    ("split:domain", "testnet", "l2"): (
        0.1,
        "measured at lr 0.01, 5 epochs: old tasks 68.8 % at the end vs 50.4 % with SGD, last "
        "task 94.0 % (SGD 95.5 %)",
    ),
    ("permuted", "testnet", "ewc"): (
        20.0,
        "measured on permuted:5 at lr 0.01, 5 epochs: the four Fishers sum to max ~3, so the "
        "SGD bound allows λ < ~100 (λ 100 diverged); λ 20 (margin 5.8) keeps the old tasks at "
        "32.1 % vs 17.2 % with SGD (task A 40.6 % vs 11.2 %), last task 61.2 % (SGD 79.9 %); "
        "λ 50 keeps 37.8 % at margin 1.8 and the last task falls to 42.8 %. A conv net on "
        "permuted pixels learns little (task A 63.1 %)",
    ),
    ("permuted", "testnet", "online-ewc"): (
        20.0, "as separate EWC: γ = 1 sums the Fishers as separate EWC does (not measured "
        "on its own)",
    ),
    ("permuted", "testnet", "l2"): (
        0.03,
        "measured on permuted:5 at lr 0.01, 5 epochs: old tasks 28.2 % at the end vs 17.2 % "
        "with SGD, last task 74.9 % (SGD 79.9 %)",
    ),
}

LAM.update(SPLIT_LAM)  # split MNIST's three scenarios: ewclab/settings_split.py

#: λ for a (scenario, model, method) that :data:`LAM` does not list.
FALLBACK_LAM = {"sgd": 0.0, "ewc": 2000.0, "online-ewc": 2000.0, "l2": 1.0, "si": 1.0,
                "mas": 1.0, "replay": 0.0}


def scenario_kind(tasks: str | Sequence[str] | Sequence[Task]) -> str:
    """The table key of a scenario: ``"permuted:7"`` → ``"permuted"``, aliases folded.

    ``tasks`` is a scenario name, the task names of a sequence (as
    :func:`ewclab.scenarios.get_scenario` names them) or the tasks themselves, so a list of
    tasks finds its row too. Split tasks have the same names in the three scenarios: only
    :class:`~ewclab.split.SplitTask` objects tell ``"split:task"``, ``"split:domain"`` and
    ``"split:class"`` apart (names alone, and plain ``"split"``, mean ``"split:domain"``).

    >>> scenario_kind("Mnist->Fashion-MNIST"), scenario_kind("permuted:3")
    ('mnist->fashion', 'permuted')
    >>> scenario_kind(["fashion-mnist", "mnist"]), scenario_kind(["mnist-split01"])
    ('fashion->mnist', 'split:domain')
    >>> scenario_kind("split:class"), scenario_kind("split")
    ('split:class', 'split:domain')
    """
    if isinstance(tasks, str):
        spec = tasks.strip().lower().replace("fashion-mnist", "fashion")
        if spec in ("split", "split-fashion"):
            return f"{spec}:domain"
        return "permuted" if spec.startswith("permuted:") else spec
    items = list(tasks) if isinstance(tasks, Sequence) else None
    if items and all(isinstance(t, SplitTask) for t in items):
        dataset = "split" if items[0].name.startswith("mnist-") else "split-fashion"
        return f"{dataset}:{items[0].scenario}"
    if items and all(isinstance(t, Task) for t in items):
        items = [t.name for t in items]
    if not items or not all(isinstance(n, str) for n in items):
        raise TypeError(f"tasks must be a scenario name or a list of task names, got {tasks!r}")
    for prefix, kind in (("mnist-perm", "permuted"), ("mnist-split", "split:domain")):
        if all(n.startswith(prefix) for n in items):
            return kind
    return scenario_kind("->".join(items))


def defaults(tasks: str = "mnist->fashion", model: str = "mlp", method: str = "ewc") -> Settings:
    """The settings the lab uses for ``tasks`` with ``model`` and ``method``.

    Parameters
    ----------
    tasks : str
        A scenario name (``"mnist->fashion"``, ``"fashion->mnist"``, ``"permuted:T"``,
        ``"split[:task|:domain|:class]"``) or the tasks (see :func:`scenario_kind`); other
        sequences get the values of the closest row. Split MNIST's rows are in
        :mod:`ewclab.settings_split`.
    model : {"mlp", "testnet", "alexnet"}
    method : {"sgd", "ewc", "online-ewc", "l2", "si", "mas", "replay"}

    Returns
    -------
    Settings

    Raises
    ------
    ValueError
        For an unknown model or method.
    """
    if model not in MODEL_DEFAULTS:
        raise ValueError(f"model must be one of {list(MODEL_DEFAULTS)}, got {model!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    kind = scenario_kind(tasks)
    m = MODEL_DEFAULTS[model]
    lam, why = LAM.get((kind, model, method), (FALLBACK_LAM[method], "not measured yet"))
    if METHODS[method] is None:
        lam, why = 0.0, "plain training: no penalty"
    if method == "replay":
        why = REPLAY_WHY.get((kind, model), "not measured yet")
    return Settings(tasks=tasks, model=model, method=method, lam=lam, lr=m.lr,
                    epochs=m.epochs, width=m.width, replay_samples=REPLAY_SAMPLES, why=why)


def offered(tasks: str, model: str) -> tuple[str, ...]:
    """The methods the front ends offer for a scenario and model: those with a measured row.

    For a scenario kind of :data:`SCENARIO_KINDS`, a method is offered where :data:`LAM`
    (or, for ``"replay"``, the replay table of :mod:`ewclab.settings_split`) has a row of
    its own, and ``"sgd"`` wherever another method is; so every offered choice runs at
    defaults chosen by measurement. Any other sequence (e.g. ``"mnist->fashion->mnist"``,
    split Fashion-MNIST) is offered the :data:`CLASSIC_METHODS` at :data:`FALLBACK_LAM`, as
    before the split scenarios came. The library (:func:`ewclab.experiment.run_sequence`)
    accepts every method anywhere.

    >>> offered("mnist->fashion", "mlp")
    ('sgd', 'ewc', 'online-ewc', 'l2')
    >>> offered("split:class", "mlp")
    ('sgd', 'ewc', 'online-ewc', 'l2', 'si', 'mas', 'replay')
    """
    kind = scenario_kind(tasks)
    if kind not in SCENARIO_KINDS:
        return CLASSIC_METHODS
    measured = [m for m in METHODS if (kind, model, m) in LAM
                or (m == "replay" and (kind, model) in REPLAY_WHY)]
    return tuple(m for m in METHODS if m in measured or (m == "sgd" and measured))


#: The demo's settings (MNIST -> Fashion-MNIST, the MLP, EWC): what ``ewclab demo --ewc``
#: and the playground start from.
DEMO = defaults()
