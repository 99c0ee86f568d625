"""The defaults table's rows for split MNIST in its three scenarios (van de Ven & Tolias
2019, "Three scenarios for continual learning"): ``"split:task"``, ``"split:domain"`` and
``"split:class"``, read by :func:`ewclab.settings.defaults` like every other row.

Every row is the MLP's (2×400, SGD lr 0.01, momentum 0.9, batch 64, 5 epochs per task: the
model's defaults, unchanged here). Each λ and buffer size was chosen by measurement on the
bundled data (one torch thread, seed 0): the grid is ``python benchmarks/bench_split.py``
and its section of ``benchmarks/RESULTS.md``. "ACC" is the final average accuracy
over the five tasks, "margin" 2(1 + momentum) / (lr · λ · max Σ Ω) below the SGD stability
bound while the last task trains (the rows keep ≥ 2). The split-domain rows of EWC, online
EWC and L2 are older (section 7 of RESULTS.md) and stay in :mod:`ewclab.settings`.

Plain data only: :mod:`ewclab.settings` merges :data:`SPLIT_LAM` into its λ table.
"""

from __future__ import annotations

__all__ = ["REPLAY_SAMPLES", "REPLAY_WHY", "SPLIT_LAM"]

#: Samples per task the replay buffer keeps (method ``"replay"``): a quarter of each
#: task's 800 bundled training images.
REPLAY_SAMPLES = 200

#: λ and its reason per (scenario kind, model, method); SI's and MAS's λ scale their
#: importances Ω in the same penalty λ/2 · Σ Ω_i (θ_i − θ*_i)².
SPLIT_LAM: dict[tuple[str, str, str], tuple[float, str]] = {
    # task-incremental: a head per task; plain SGD forgets little here (ACC 95.6 %)
    ("split:task", "mlp", "ewc"): (
        1000.0,
        "ACC 96.9 % vs 95.6 % with SGD at margin 9.8; λ 300: 96.8 %, λ 3000: 97.0 % at "
        "margin 2.7",
    ),
    ("split:task", "mlp", "online-ewc"): (
        1000.0, "ACC 97.1 % vs 95.6 % with SGD at margin 9.7; λ 3000: 97.1 % at margin 2.7",
    ),
    ("split:task", "mlp", "l2"): (
        0.1, "ACC 95.8 % vs 95.6 % with SGD; λ 0.3 holds the heads back (93.8 %)",
    ),
    ("split:task", "mlp", "si"): (
        1000.0,
        "ACC 96.2 % vs 95.6 % with SGD at margin 4.6; λ 100 and 300: 95.8 %, λ 2000: 96.1 % "
        "(margin 2.3), λ 3000: 96.5 % at margin 1.5 (too near the bound); SI's Ω is small "
        "here (max ~0.08), hence the large λ",
    ),
    ("split:task", "mlp", "mas"): (
        1.0,
        "ACC 96.9 % vs 95.6 % with SGD at margin 50; λ 3: 96.8 %, λ 10: 96.4 % (margin 5.0)",
    ),
    # domain-incremental: one shared 2-way head
    ("split:domain", "mlp", "si"): (
        1000.0,
        "ACC 67.2 % vs 61.5 % with SGD at margin 3.2; λ 100: 62.9 %, λ 300: 64.1 %, λ 3000: "
        "71.8 % at margin 1.2 (too near the bound)",
    ),
    ("split:domain", "mlp", "mas"): (
        10.0,
        "ACC 83.5 % vs 61.5 % with SGD at margin 2.3; λ 0.3: 71.0 %, λ 1: 74.1 %, λ 3: "
        "77.3 % (margin 6.9)",
    ),
    # class-incremental: one 10-way head; no penalty keeps the old classes (the lesson), so
    # each row takes the strongest λ measured with margin >= 2
    ("split:class", "mlp", "ewc"): (
        300.0,
        "the strongest λ measured with margin >= 2 (4.9): ACC 18.6 % vs 19.1 % with SGD, "
        "the old tasks 0 %; λ 30 and 100 give 18.9 %: in class-IL the shared head drifts "
        "to the newest classes at any λ",
    ),
    ("split:class", "mlp", "online-ewc"): (
        300.0, "as EWC: ACC 18.7 % vs 19.1 % with SGD at margin 4.9 (λ 100: 18.8 %)",
    ),
    ("split:class", "mlp", "l2"): (
        0.3,
        "ACC 34.8 % vs 19.1 % with SGD (old tasks 20.0 % vs 0 %) at margin 317; λ 0.1: "
        "19.1 %",
    ),
    ("split:class", "mlp", "si"): (
        100.0,
        "the strongest λ measured with margin >= 2 (4.5): ACC 20.7 % vs 19.1 % with SGD; "
        "λ 10 and 30: 19.1 % and 19.0 %",
    ),
    ("split:class", "mlp", "mas"): (
        1.0,
        "the strongest λ measured with margin >= 2 (3.2): ACC 25.1 % vs 19.1 % with SGD; "
        "λ 0.1: 26.0 %, λ 0.3: 20.0 %: no λ lifts the old tasks above 10 %",
    ),
}

#: Why the replay buffer of a (scenario kind, model) keeps :data:`REPLAY_SAMPLES` per task.
REPLAY_WHY: dict[tuple[str, str], str] = {
    ("split:task", "mlp"): (
        "ACC 96.0 % with 200 samples per task vs 95.6 % with SGD; 50 and 500 give 96.5 %, "
        "all 800 96.6 %: with a head per task little is forgotten to replay; 200 as in "
        "the other scenarios"
    ),
    ("split:domain", "mlp"): (
        "ACC 88.1 % with 200 samples per task vs 61.5 % with SGD; 50: 87.2 %, 500: 89.0 %, "
        "all 800: 89.2 %"
    ),
    ("split:class", "mlp"): (
        "ACC 79.6 % with 200 samples per task vs 19.1 % with SGD; 50: 75.5 %, 500: 79.5 %, "
        "all 800: 81.0 %: 200 (a quarter of each task) is where more memory stops paying"
    ),
}
