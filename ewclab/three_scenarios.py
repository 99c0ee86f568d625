"""Lesson 07's measurements: the published split-MNIST table of van de Ven & Tolias 2019
("Three scenarios for continual learning", arXiv:1904.07734) and what a class-incremental
network predicts after the last task.

- :data:`PUBLISHED`: their split-MNIST final average accuracy (Task-IL, Class-IL), in %;
- :func:`confusion_matrix`: true class × predicted class over the test sets of some tasks;
- :func:`share_predicted`: the fraction of all predictions that fall in some classes (in
  class-IL after plain training: the last task's two classes take almost all of them);
- :func:`comparison_table`: our accuracies beside the published ones, as a Markdown table.

>>> cm = confusion_matrix(learner, tasks)                 # doctest: +SKIP
>>> share_predicted(cm, tasks[-1].original_labels)        # doctest: +SKIP
0.99
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ewclab.validation import check_int

__all__ = ["PUBLISHED", "PUBLISHED_NAMES", "comparison_table", "confusion_matrix",
           "share_predicted"]

#: van de Ven & Tolias 2019, split MNIST, final average accuracy over the five tasks in %,
#: (Task-IL, Class-IL). "none" is plain sequential training, "dgr+distill" deep generative
#: replay with distillation (a generator's samples, not stored ones), "joint" training on
#: all tasks at once (their upper bound).
PUBLISHED: dict[str, tuple[float, float]] = {
    "none": (87.2, 19.9),
    "ewc": (98.6, 20.0),
    "online-ewc": (99.1, 20.0),
    "si": (99.1, 20.0),
    "dgr+distill": (99.6, 91.8),
    "joint": (99.7, 97.9),
}

#: Which of our methods each published row is set beside (None: we run no such method).
PUBLISHED_NAMES: dict[str, str | None] = {
    "none": "sgd", "ewc": "ewc", "online-ewc": "online-ewc", "si": "si",
    "dgr+distill": "replay", "joint": None,
}


def confusion_matrix(model: Any, tasks: Iterable[Any], samples: int | None = None) -> np.ndarray:
    """Counts of (true class, predicted class) over the tasks' test sets (lesson 07).

    Parameters
    ----------
    model : Learner
        Anything with ``predict(X) -> labels`` (one shared head: the class-IL scenario,
        where the labels are the dataset's own).
    tasks : iterable of Task
        Their test sets are predicted; all must have the same ``num_classes``.
    samples : int, optional
        Use each task's first ``samples`` test images (default: all).

    Returns
    -------
    numpy.ndarray of int, shape (C, C)
        ``cm[i, j]`` test images of class i predicted as class j.

    Raises
    ------
    ValueError
        No tasks, tasks of different ``num_classes``, or a label outside ``[0, C)``.
    """
    tasks = list(tasks)
    if not tasks:
        raise ValueError(f"tasks must be a non-empty list of Task, got {tasks!r}")
    if samples is not None:
        check_int(samples, "samples", low=1)
    sizes = {t.num_classes for t in tasks}
    if len(sizes) != 1:
        raise ValueError(f"tasks must share num_classes (one head), got {sorted(sizes)}")
    c = sizes.pop()
    cm = np.zeros((c, c), dtype=np.int64)
    for t in tasks:
        y = np.asarray(t.y_test[:samples], dtype=np.int64)
        pred = np.asarray(model.predict(t.X_test[:samples]), dtype=np.int64)
        if y.size and (y.min() < 0 or y.max() >= c or pred.min() < 0 or pred.max() >= c):
            raise ValueError(f"labels must lie in [0, {c}) for task {t.name!r}")
        np.add.at(cm, (y, pred), 1)
    return cm


def share_predicted(cm: Any, classes: Sequence[int]) -> float:
    """The fraction of all predictions in a confusion matrix that name one of ``classes``
    (the columns' share of the total).

    Raises
    ------
    ValueError
        A matrix that is not square, non-negative with a positive total, or a class outside it.
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or (cm < 0).any() or cm.sum() <= 0:
        raise ValueError(f"cm must be a square count matrix with a positive total, got shape "
                         f"{cm.shape}")
    cols = [check_int(k, "class", low=0, high=cm.shape[0] - 1) for k in classes]
    if not cols:
        raise ValueError(f"classes must name at least one class, got {classes!r}")
    return float(cm[:, sorted(set(cols))].sum() / cm.sum())


def comparison_table(ours: Mapping[str, Mapping[str, float]],
                     labels: Mapping[str, str] | None = None) -> str:
    """Our final average accuracies beside :data:`PUBLISHED`, as a Markdown table (lesson 07).

    Parameters
    ----------
    ours : dict of scenario to (dict of method to accuracy in [0, 1])
        Scenarios ``"task"``, ``"domain"``, ``"class"`` (any subset); methods as in
        :func:`ewclab.experiment.run_sequence`.
    labels : dict of str to str, optional
        Display names of the methods (default: the method names).

    Returns
    -------
    str
        One row per method we ran, then the published rows we have no run for; a "–"
        where a value is missing (the published table's domain-IL column is not shown).
    """
    labels = dict(labels or {})
    scenarios = [s for s in ("task", "domain", "class") if s in ours]
    methods = list(dict.fromkeys(m for s in scenarios for m in ours[s]))
    paper = {ours_name: (name, value) for name, value in PUBLISHED.items()
             if (ours_name := PUBLISHED_NAMES[name]) is not None}
    head = ["method"] + [f"ours {s}-IL" for s in scenarios] + [
        "published", "published Task-IL", "published Class-IL"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def pct(v: float | None) -> str:
        return "–" if v is None or not np.isfinite(v) else f"{100 * v:.1f}"

    for m in methods:
        name, (task_il, class_il) = paper.get(m, ("–", (None, None)))
        cells = [labels.get(m, m)] + [pct(ours[s].get(m)) for s in scenarios]
        cells += [name, "–" if task_il is None else f"{task_il:.1f}",
                  "–" if class_il is None else f"{class_il:.1f}"]
        rows.append("| " + " | ".join(cells) + " |")
    for name, (task_il, class_il) in PUBLISHED.items():
        if PUBLISHED_NAMES[name] not in methods:
            cells = ["–"] * (1 + len(scenarios)) + [name, f"{task_il:.1f}", f"{class_il:.1f}"]
            rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)
