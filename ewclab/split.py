"""Split MNIST / Fashion-MNIST in the three continual-learning scenarios of van de Ven &
Tolias 2019 ("Three scenarios for continual learning"): five tasks of two classes each,
(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), that differ only in what the network is asked.

- ``"task"`` (task-incremental): labels 0/1 within the task, one output head per task,
  and the task label is given at test time (route by :attr:`SplitTask.task_id`);
- ``"domain"`` (domain-incremental): labels 0/1, one shared 2-way head, no task label
  ("is it the first or the second class of its task?");
- ``"class"`` (class-incremental): the original labels 0-9, one shared 10-way head, no
  task label (every task's test set is scored among all ten classes).

>>> mnist = load_task("mnist")                                    # doctest: +SKIP
>>> [t.original_labels for t in split_tasks(mnist, "class")][:2]  # doctest: +SKIP
[(0, 1), (2, 3)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

from ewclab.data import Task, split_task
from ewclab.validation import check_int, check_option

__all__ = ["PAIRS", "SPLIT_SCENARIOS", "SplitTask", "split_tasks"]

#: The three scenarios, by their short names.
SPLIT_SCENARIOS = ("task", "domain", "class")

#: The classes of the five split tasks (van de Ven & Tolias 2019, split MNIST).
PAIRS = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))


@dataclass(frozen=True, repr=False)
class SplitTask(Task):
    """A :class:`~ewclab.data.Task` holding some classes of a dataset, in one scenario.

    Besides the fields of Task (``name``, ``classes``, the arrays) it has three more.

    Attributes
    ----------
    original_labels : tuple of int
        The dataset labels this task holds, e.g. ``(2, 3)``.
    scenario : {"task", "domain", "class"}
        What the labels mean: 0/1 within the task (``"task"``, ``"domain"``) or the
        dataset's own labels (``"class"``; then ``classes`` lists all the dataset's
        names, so ``num_classes`` is the width of the shared head).
    task_id : int
        Position in the sequence, from 0; in ``"task"`` scenarios the head to use.
    """

    original_labels: tuple[int, ...] = ()
    scenario: str = "domain"
    task_id: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_option(self.scenario, "scenario", SPLIT_SCENARIOS)
        check_int(self.task_id, "task_id", low=0)

    def __repr__(self) -> str:
        return (
            f"SplitTask({self.name!r}, {self.scenario}-incremental, task_id={self.task_id}, "
            f"labels {self.original_labels} -> {self.num_classes} classes, "
            f"train={len(self.x_train)}, test={len(self.x_test)})"
        )


def split_tasks(
    task: Task, scenario: str = "domain", pairs: Sequence[Sequence[int]] = PAIRS
) -> list[SplitTask]:
    """The split tasks of ``task`` (a whole dataset) in one scenario.

    Parameters
    ----------
    task : Task
        MNIST or Fashion-MNIST as :func:`~ewclab.data.load_task` returns it.
    scenario : {"task", "domain", "class"}, default "domain"
        ``"task"`` and ``"domain"`` remap each task's labels to 0, 1, ... in the order of
        its pair; ``"class"`` keeps the dataset's labels and class list.
    pairs : sequence of sequences of int, default :data:`PAIRS`
        The classes of each task, in training order.

    Returns
    -------
    list of SplitTask
        Named ``"<dataset>-split<classes>"`` (e.g. ``"mnist-split01"``), ``task_id`` 0, 1, ...

    Raises
    ------
    TypeError, ValueError
        An unknown scenario, no pairs, a class in two tasks, or classes that
        :func:`~ewclab.data.split_task` refuses.
    """
    check_option(scenario, "scenario", SPLIT_SCENARIOS)
    if (isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence) or not pairs
            or not all(isinstance(p, Sequence) and not isinstance(p, str) for p in pairs)):
        raise TypeError(f"pairs must be a non-empty sequence of class lists, got {pairs!r}")
    seen = [c for pair in pairs for c in pair]
    if len(set(seen)) != len(seen):
        raise ValueError(f"pairs must not share classes, got {[tuple(p) for p in pairs]!r}")
    out = []
    for i, pair in enumerate(pairs):
        part = split_task(task, pair, remap=scenario != "class")
        base = {f.name: getattr(part, f.name) for f in fields(Task)}
        labels = tuple(int(c) for c in pair)
        out.append(SplitTask(**base, original_labels=labels, scenario=scenario, task_id=i))
    return out
