"""What happened during a sequential-training run: accuracy curves, boundaries, Fisher.

A :class:`History` is written by the training thread (``start_task``, ``record``,
``finish_task``) and read by plots, possibly from a UI thread through ``snapshot()``.
Every writer validates its input completely before changing anything, under one lock.
"""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

_KEYS = ("tasks", "settings", "steps", "accuracy", "boundaries", "accuracy_matrix")


def _check_step(step: object) -> int:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        raise ValueError(f"step must be a non-negative integer, got {step!r}")
    return int(step)


def _check_accuracy(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: accuracy must be a real number in [0, 1], got {value!r}")
    acc = float(value)
    if not 0.0 <= acc <= 1.0:  # also rejects NaN
        raise ValueError(f"{where}: accuracy must be a fraction in [0, 1], got {acc!r}")
    return acc


class History:
    """Accuracy of every task over training, task boundaries, accuracy matrix and Fisher.

    Parameters
    ----------
    tasks : sequence of str
        Task names in training order (unique, non-empty).
    settings : mapping, optional
        Run settings (method, lam, epochs, model, seed, ...); must be JSON-serialisable.

    Attributes
    ----------
    tasks : list of str
        Task names in training order.
    settings : dict
        Run settings.
    steps : list of int
        Global optimisation step of each evaluation point (non-decreasing).
    accuracy : dict of str to list of float
        Task name -> test accuracy in [0, 1] at each point of ``steps``.
    boundaries : list of int
        Global step at which each started task's training began; ``boundaries[i]`` belongs
        to ``tasks[i]``.
    accuracy_matrix : numpy.ndarray
        ``(T, T)`` float; ``R[i, j]`` is the test accuracy on task ``j`` after training
        task ``i``; NaN until known.
    fisher : dict of str to dict of str to torch.Tensor
        Final diagonal Fisher per task name (CPU tensors). Set by the caller; a snapshot
        shares these tensors, so replace them rather than modifying them in place.
    importance : dict of str to dict of str to torch.Tensor
        Per task name, the importance per weight its penalty term was given (the Fisher
        for EWC and L2, SI's or MAS's Ω); empty for methods that anchor nothing (plain
        SGD, replay). Shared by snapshots like ``fisher``.

    Notes
    -----
    Read the public attributes directly only from the thread that writes them; any other
    thread should call :meth:`snapshot` (or :meth:`to_dict`) and read the copy.
    """

    def __init__(self, tasks: Sequence[str], settings: Mapping | None = None) -> None:
        if isinstance(tasks, str) or not isinstance(tasks, Sequence):
            raise TypeError(f"tasks must be a sequence of task names, got {tasks!r}")
        names = list(tasks)
        if not names or not all(isinstance(t, str) and t for t in names):
            raise ValueError(f"tasks must be a non-empty list of non-empty strings, got {names!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names!r}")
        if settings is not None and not isinstance(settings, Mapping):
            raise TypeError(f"settings must be a mapping or None, got {type(settings).__name__}")
        try:
            self.settings: dict = json.loads(json.dumps(dict(settings or {}), allow_nan=False))
        except (TypeError, ValueError) as err:
            raise ValueError(f"settings must be JSON-serialisable: {err}") from err
        self.tasks: list[str] = names
        self.steps: list[int] = []
        self.accuracy: dict[str, list[float]] = {t: [] for t in names}
        self.boundaries: list[int] = []
        self.accuracy_matrix: np.ndarray = np.full((len(names), len(names)), np.nan)
        self.fisher: dict[str, dict[str, torch.Tensor]] = {}
        self.importance: dict[str, dict[str, torch.Tensor]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"History(tasks={self.tasks!r}, started={len(self.boundaries)}, "
            f"points={len(self.steps)}, settings={self.settings!r})"
        )

    def _check_all_tasks(self, accuracies: Mapping[str, float], where: str) -> dict[str, float]:
        if not isinstance(accuracies, Mapping):
            raise TypeError(f"{where}: accuracies must be a mapping task -> accuracy")
        if set(accuracies) != set(self.tasks):
            raise ValueError(
                f"{where}: expected accuracies for exactly the tasks {self.tasks!r}, "
                f"got {sorted(accuracies)!r}"
            )
        return {t: _check_accuracy(accuracies[t], f"{where}, task {t!r}") for t in self.tasks}

    def start_task(self, name: str, step: int) -> None:
        """Mark that training on ``name`` (the next task in ``tasks``) starts at ``step``."""
        step = _check_step(step)
        with self._lock:
            started = len(self.boundaries)
            if started == len(self.tasks):
                raise ValueError(f"all tasks {self.tasks!r} have already been started")
            if name != self.tasks[started]:
                raise ValueError(
                    f"tasks must be started in order: expected {self.tasks[started]!r}, "
                    f"got {name!r}"
                )
            last = max(self.boundaries[-1:] + self.steps[-1:], default=0)
            if step < last:
                raise ValueError(f"step {step} is before the last recorded step {last}")
            self.boundaries.append(step)

    def record(self, step: int, accuracies: Mapping[str, float]) -> None:
        """Add one evaluation point: the test accuracy of every task at ``step``."""
        step = _check_step(step)
        accs = self._check_all_tasks(accuracies, "record")
        with self._lock:
            last = max(self.boundaries[-1:] + self.steps[-1:], default=0)
            if step < last:
                raise ValueError(f"step {step} is before the last recorded step {last}")
            self.steps.append(step)
            for t, a in accs.items():
                self.accuracy[t].append(a)

    def finish_task(self, name: str, accuracies: Mapping[str, float]) -> None:
        """Fill row ``i`` of the accuracy matrix after training task ``name = tasks[i]``."""
        accs = self._check_all_tasks(accuracies, "finish_task")
        with self._lock:
            if not self.boundaries or name != self.tasks[len(self.boundaries) - 1]:
                current = self.tasks[len(self.boundaries) - 1] if self.boundaries else None
                raise ValueError(
                    f"finish_task expects the task in training ({current!r}), got {name!r}"
                )
            i = self.tasks.index(name)
            if not np.isnan(self.accuracy_matrix[i]).all():
                raise ValueError(f"task {name!r} has already been finished")
            self.accuracy_matrix[i] = [accs[t] for t in self.tasks]

    def to_dict(self) -> dict:
        """JSON-able copy; NaN in ``accuracy_matrix`` becomes None; Fisher is omitted."""
        with self._lock:
            return {
                "tasks": list(self.tasks),
                "settings": json.loads(json.dumps(self.settings)),
                "steps": list(self.steps),
                "accuracy": {t: list(v) for t, v in self.accuracy.items()},
                "boundaries": list(self.boundaries),
                "accuracy_matrix": [
                    [None if math.isnan(x) else float(x) for x in row]
                    for row in self.accuracy_matrix
                ],
            }

    def to_json(self, path: str | Path | None = None) -> str:
        """Return :meth:`to_dict` as JSON text; also write it to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def to_csv(self, path: str | Path | None = None) -> str:
        """Return the accuracy curves in long format ``step,task,accuracy``.

        Also writes the text to ``path`` when given.
        """
        d = self.to_dict()
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["step", "task", "accuracy"])
        for k, step in enumerate(d["steps"]):
            for t in d["tasks"]:
                writer.writerow([step, t, repr(d["accuracy"][t][k])])
        text = buf.getvalue()
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_dict(cls, d: Mapping) -> History:
        """Rebuild a History from :meth:`to_dict` output (validated; Fisher left empty)."""
        if not isinstance(d, Mapping):
            raise TypeError(f"expected a mapping from History.to_dict(), got {type(d).__name__}")
        missing = [k for k in _KEYS if k not in d]
        if missing:
            raise ValueError(f"History dict is missing keys {missing!r}")
        h = cls(d["tasks"], d["settings"])
        steps = [_check_step(s) for s in d["steps"]]
        boundaries = [_check_step(s) for s in d["boundaries"]]
        if steps != sorted(steps) or boundaries != sorted(boundaries):
            raise ValueError("steps and boundaries must be non-decreasing")
        if len(boundaries) > len(h.tasks):
            raise ValueError(f"{len(boundaries)} boundaries for {len(h.tasks)} tasks")
        acc = d["accuracy"]
        if not isinstance(acc, Mapping) or set(acc) != set(h.tasks):
            raise ValueError(f"accuracy must map exactly the tasks {h.tasks!r}")
        for t in h.tasks:
            if len(acc[t]) != len(steps):
                raise ValueError(f"accuracy[{t!r}] has {len(acc[t])} values for {len(steps)} steps")
            h.accuracy[t] = [_check_accuracy(a, f"accuracy[{t!r}]") for a in acc[t]]
        rows = d["accuracy_matrix"]
        if len(rows) != len(h.tasks) or any(len(r) != len(h.tasks) for r in rows):
            raise ValueError(f"accuracy_matrix must be {len(h.tasks)}x{len(h.tasks)}")
        h.accuracy_matrix = np.array(
            [
                [np.nan if _is_missing(x) else _check_accuracy(x, "accuracy_matrix") for x in r]
                for r in rows
            ],
            dtype=float,
        ).reshape(len(h.tasks), len(h.tasks))
        h.steps, h.boundaries = steps, boundaries
        return h

    def snapshot(self) -> History:
        """A consistent copy, safe to read while the training thread keeps appending.

        Lists and the matrix are copied; Fisher and importance tensors are shared, not
        cloned.
        """
        with self._lock:
            h = History(self.tasks, self.settings)
            h.steps = list(self.steps)
            h.accuracy = {t: list(v) for t, v in self.accuracy.items()}
            h.boundaries = list(self.boundaries)
            h.accuracy_matrix = self.accuracy_matrix.copy()
            h.fisher = {t: dict(f) for t, f in self.fisher.items()}
            h.importance = {t: dict(f) for t, f in self.importance.items()}
            return h


def _is_missing(x: object) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))
