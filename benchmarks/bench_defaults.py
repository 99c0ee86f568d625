"""The MLP's defaults per scenario and method: the λ grid the rows of ``ewclab.settings`` come from.

For each task sequence of ``ewclab demo --tasks`` and each method that has a λ (EWC, online
EWC, L2), the MLP is trained at the settings table's lr and epochs with a few λ and once
without a penalty (SGD). A row is a good default when

- SGD stays stable on the penalty with a margin: ``margin`` = 2(1 + momentum) / (lr · λ ·
  max Σ F) ≥ 2, where Σ F is the penalty's summed importance while the last task trains
  (``Learner.check_stability`` refuses a run at margin ≤ 1), and
- the scenario's lesson holds: the old tasks end clearly better than with SGD (the
  forgetting, averaged over the old tasks, is much smaller) while the last task is still
  learned.

Everything runs on one torch thread on the bundled data (seed 0).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import torch

from ewclab.cache import TaskACache
from ewclab.experiment import run_sequence
from ewclab.metrics import average_accuracy, backward_transfer
from ewclab.scenarios import get_scenario
from ewclab.settings import METHODS, defaults

#: (scenario, {method: λ values}) measured; SGD (λ = 0) is always run first.
GRID = [
    ("mnist->fashion", {"ewc": [2000], "online-ewc": [1000, 2000],
                        "l2": [0.03, 0.1, 0.3, 1]}),
    ("fashion->mnist", {"ewc": [100, 200, 300, 500], "online-ewc": [100, 200, 300, 500],
                        "l2": [0.03, 0.1, 0.3, 1]}),
    ("split", {"ewc": [300, 1000, 1500, 2000], "online-ewc": [300, 1000, 1500],
               "l2": [0.03, 0.1, 0.3]}),
    ("permuted:5", {"ewc": [100, 300, 500], "online-ewc": [100, 300], "l2": [0.03, 0.1]}),
]


def stiffness(history, method: str, lam: float) -> float:
    """λ · max Σ F over the terms in the penalty while the last task trains (the largest
    curvature SGD meets; F = 1 per task for L2)."""
    earlier = [history.fisher[t] for t in history.tasks[:-1]]
    if METHODS[method] == "l2":
        return lam * len(earlier)
    names = earlier[0]
    return lam * max(float(sum(F[name] for F in earlier).max()) for name in names)


def _run(tasks, method: str, lam: float, cache: TaskACache):
    """(history or None, seconds, why it failed) of one run at the table's lr and epochs."""
    start = time.perf_counter()
    try:
        h = run_sequence(tasks, model="mlp", method=method, lam=lam, cache=cache)
    except (FloatingPointError, ValueError) as err:
        return None, time.perf_counter() - start, " ".join(str(err).split()[:4])
    return h, time.perf_counter() - start, ""


def _old_tasks_kept(R: np.ndarray) -> float:
    """Mean accuracy of the old tasks at the end (every task but the last)."""
    return float(np.mean(R[-1, :-1]))


def run() -> str:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _grid()
    finally:
        torch.set_num_threads(threads)


def _grid() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    started = time.strftime("%Y-%m-%d %H:%M")
    momentum = 0.9
    rows = []
    for spec, methods in GRID:
        tasks = get_scenario(spec)
        cache = TaskACache()  # task A trained once per scenario (it does not depend on λ)
        runs = [("sgd", 0.0)] + [(m, lam) for m, lams in methods.items() for lam in lams]
        for method, lam in runs:
            h, seconds, failed = _run(tasks, method, lam, cache)
            s = defaults(spec, "mlp", method)
            if h is None:
                rows.append(f"| {spec} | {method} | {lam:g} | {failed} | | | | | | {seconds:.0f} |")
            else:
                R = h.accuracy_matrix
                k = stiffness(h, method, lam) if method != "sgd" else 0.0
                margin = 2 * (1 + momentum) / (s.lr * k) if k else float("inf")
                rows.append(
                    f"| {spec} | {method} | {lam:g} | {100 * average_accuracy(R):.1f} | "
                    f"{100 * backward_transfer(R):+.1f} | {100 * _old_tasks_kept(R):.1f} | "
                    f"{100 * R[-1, -1]:.1f} | {100 * R[0, 0]:.1f} | "
                    f"{'—' if margin == float('inf') else f'{margin:.1f}'} | {seconds:.0f} |"
                )
            print(rows[-1], file=sys.stderr, flush=True)
    s = defaults("mnist->fashion", "mlp", "ewc")
    return "\n".join([
        "## 7. The MLP's defaults per scenario and method (`ewclab.settings`)",
        "",
        f"Measured from {started} (load average {load} at the start; the "
        "CPU was shared with other jobs, which changes seconds, not accuracies), one torch "
        f"thread, bundled data, seed 0; MLP 2×{s.width}, SGD lr {s.lr} (momentum "
        f"{momentum}), batch {s.batch_size}, {s.epochs} epochs per task, {s.fisher} Fisher "
        f"on {s.fisher_samples} samples. One `run_sequence` per row; task A is trained "
        "once per scenario (task-A cache). ACC: average accuracy over all tasks at the end; "
        "BWT: backward transfer (negative = forgetting); old kept: mean accuracy of every "
        "task but the last at the end; margin: 2(1+momentum) / (lr · λ · max Σ F), Σ F "
        "the penalty's importance while the last task trains (F = 1 per task for L2); "
        "`Learner.check_stability` refuses a run below 1, the defaults keep ≥ 2. A refused "
        "or diverged run shows the error's first words.",
        "",
        "| tasks | method | λ | ACC (%) | BWT (points) | old kept (%) | last task (%) | "
        "A after A (%) | margin | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "How each default was chosen (the `why` of its row in `ewclab/settings.py`): the λ "
        "that keeps the old tasks clearly better than SGD (higher `old kept`, BWT closer to "
        "0) at margin ≥ 2, without giving the last task away (within ~10 points of SGD's).",
    ])


if __name__ == "__main__":
    print(run())
