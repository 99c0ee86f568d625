"""Measure the λ sweep that assignment ``metrics_and_lambda`` reads (``lambda_sweep.json``).

For each λ, an MLP learns MNIST then Fashion-MNIST (the bundled subsets, the lab's own
defaults otherwise) with EWC; λ = 0 is plain training. The last 1000 training images of
each task are held out as a **validation** set: the accuracy matrix recorded during the
run is measured on it. After the run, the final model is also scored on each task's
**test** set, which the student may only look at once λ is chosen. A λ that the stability
bound refuses (SGD would diverge) is stored as ``null``.

Run from the repository root (about a minute on one CPU thread)::

    OMP_NUM_THREADS=1 .venv/bin/python exercises/make_lambda_sweep.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ewclab.data import Task
from ewclab.experiment import evaluate, make_model, run_sequence
from ewclab.learner import DivergenceError
from ewclab.scenarios import get_scenario

SCENARIO = "mnist->fashion"
LAMS = (0.0, 10.0, 100.0, 300.0, 1000.0, 2000.0, 3000.0, 4000.0, 6000.0)
HELD_OUT = 1000
SEED = 0
OUT = Path(__file__).resolve().parent / "source" / "metrics_and_lambda" / "lambda_sweep.json"


def _split(task: Task) -> Task:
    """The task with its last ``HELD_OUT`` training images as its evaluation ("test") set."""
    keep = len(task.x_train) - HELD_OUT
    return Task(
        task.name, task.classes,
        task.x_train[:keep], task.y_train[:keep], task.x_train[keep:], task.y_train[keep:],
    )  # fmt: skip


def main() -> None:
    tasks = get_scenario(SCENARIO)
    validation_tasks = [_split(t) for t in tasks]
    validation, test = {}, {}
    for lam in LAMS:
        learners = []

        def build(learners=learners):
            learners.append(make_model("mlp", seed=SEED))
            return learners[-1]

        method = "ewc" if lam > 0 else "sgd"
        try:
            history = run_sequence(validation_tasks, model=build, method=method, lam=lam, seed=SEED)
        except DivergenceError as refused:  # the stability bound: no numbers for this λ
            print(f"λ {lam:>6g}: refused ({refused})")
            validation[f"{lam:g}"] = test[f"{lam:g}"] = None
            continue
        final = evaluate(learners[-1], tasks)
        R = history.accuracy_matrix  # (T, T)
        validation[f"{lam:g}"] = [[round(float(a), 4) for a in row] for row in R]
        test[f"{lam:g}"] = [round(final[t.name], 4) for t in tasks]
        print(f"λ {lam:>6g}: validation {validation[f'{lam:g}']}, test {test[f'{lam:g}']}")
    data = {
        "about": (
            f"{SCENARIO}, bundled data, ewclab MLP at the lab's defaults, seed {SEED}; "
            f"validation = the last {HELD_OUT} training images of each task (R[i][j]: task j "
            "after training task i); test = each task's test set, final model only; null: "
            "λ refused before task B because SGD would diverge (the stability bound). "
            "Made by exercises/make_lambda_sweep.py."
        ),
        "tasks": [t.name for t in tasks],
        "validation": validation,
        "test_final": test,
    }
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, OUT)


if __name__ == "__main__":
    main()
